import { InvalidArgumentError } from "commander";

export function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw new InvalidArgumentError("expected a port number from 0 to 65535.");
  return port;
}

export function parseName(text: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(text))
    throw new InvalidArgumentError("expected letters, digits, '.', '_' or '-', starting with a letter or digit.");
  return text;
}

/** A positive whole number (a count, a limit). */
export function parseCount(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || !Number.isSafeInteger(n)) throw new InvalidArgumentError("expected a whole number of at least 1.");
  return n;
}

/** A number of seconds above 0, e.g. 30 or 2.5. */
export function parseSeconds(text: string): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || n <= 0 || n > 86_400) throw new InvalidArgumentError("expected a number of seconds above 0 (at most 86400).");
  return n;
}
