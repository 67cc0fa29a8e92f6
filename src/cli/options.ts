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
