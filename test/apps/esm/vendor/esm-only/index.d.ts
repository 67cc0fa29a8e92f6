export declare const shout: (s: string) => string;
