// A package that only `import` can load: its exports have no "require" condition.
export const shout = (s) => `${s.toUpperCase()}!`;
