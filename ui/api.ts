import { signal } from "@preact/signals";

// Requests to the server the page came from: the admin secret (beyond loopback) from this
// tab's session only, and the page's token on every action.

const SECRET_KEY = "mend-admin-secret";

export interface Session {
  token: string;
  version: string;
  editorUrl: string;
  dev: boolean;
  loopback: boolean;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const session = signal<Session | undefined>(undefined);
/** The server asked for its admin secret (a 401): the page shows the form. */
export const needSecret = signal(false);

export function secret(): string {
  return sessionStorage.getItem(SECRET_KEY) ?? "";
}

export function setSecret(value: string): void {
  sessionStorage.setItem(SECRET_KEY, value);
  needSecret.value = false;
}

export function authHeaders(): Record<string, string> {
  const s = secret();
  return s ? { authorization: `Bearer ${s}` } : {};
}

async function request<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { ...authHeaders() };
  if (method === "POST") {
    headers["content-type"] = "application/json";
    headers["x-mend-token"] = session.value?.token ?? "";
  }
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch {
    throw new ApiError(0, "UNREACHABLE", "The server does not answer. Is it running?");
  }
  const parsed = (await response.json().catch(() => ({}))) as T & { error?: { code: string; message: string } };
  if (response.status === 401) needSecret.value = true;
  if (!response.ok) throw new ApiError(response.status, parsed.error?.code ?? "ERROR", parsed.error?.message ?? `The server answered ${response.status}.`);
  return parsed;
}

export const get = <T>(path: string) => request<T>("GET", path);
export const post = <T>(path: string, body?: unknown) => request<T>("POST", path, body ?? {});

/** Path parts of ids: any character, one part each. */
export const part = encodeURIComponent;
