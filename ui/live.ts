import { signal } from "@preact/signals";
import { useEffect, useRef, useState } from "preact/hooks";
import { authHeaders, ApiError } from "./api";
import { SseParser, type SseEvent } from "./sse";

// The live side of the page: one stream of the server's events, read with fetch (it sends
// the admin secret, which EventSource cannot), resumed with Last-Event-ID after a drop.

export interface LiveEvent {
  type: string;
  data: Record<string, unknown>;
}

export const connection = signal<"connecting" | "live" | "down">("connecting");
/** Moves on each time the stream says its gap was too long (or the server changed): every list loads again. */
export const resets = signal(0);

const listeners = new Set<(e: LiveEvent) => void>();

export function onEvent(listener: (e: LiveEvent) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

let lastId = "";
let stream = "";

export async function connect(): Promise<void> {
  for (;;) {
    try {
      await readStream();
    } catch {
      // Dropped: try again below.
    }
    connection.value = "down";
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function readStream(): Promise<void> {
  const headers: Record<string, string> = { ...authHeaders(), accept: "text/event-stream" };
  if (lastId) headers["last-event-id"] = lastId;
  const response = await fetch("/v1/events", { headers, cache: "no-store" });
  if (!response.ok || !response.body) throw new ApiError(response.status, "STREAM", "The event stream was refused.");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    for (const event of parser.push(value)) dispatch(event);
  }
}

function dispatch(event: SseEvent): void {
  if (event.id !== undefined) lastId = event.id;
  let data: Record<string, unknown> = {};
  try {
    data = JSON.parse(event.data) as Record<string, unknown>;
  } catch {
    return;
  }
  if (event.event === "hello") {
    // A new stream (the server restarted, or stopped listening for a while): what we hold may be old.
    if (stream && data.stream !== stream) resets.value++;
    stream = String(data.stream);
    connection.value = "live";
    return;
  }
  if (event.event === "reset") {
    resets.value++;
    return;
  }
  for (const l of listeners) l({ type: event.event, data });
}

/**
 * Loads with `load` now, again when `deps` change, and again soon after each event that
 * `matters` (coalesced: one load at a time, one more if events came during it).
 */
export function useLive<T>(load: () => Promise<T>, deps: unknown[], matters: (e: LiveEvent) => boolean): { data?: T; error?: string; reload: () => void } {
  const [state, setState] = useState<{ data?: T; error?: string }>({});
  const current = useRef({ load, matters });
  current.current = { load, matters };
  const control = useRef<{ running: boolean; again: boolean; timer?: ReturnType<typeof setTimeout>; alive: boolean }>({ running: false, again: false, alive: true });

  const run = () => {
    const c = control.current;
    if (c.running) {
      c.again = true;
      return;
    }
    c.running = true;
    current.current.load().then(
      (data) => c.alive && setState({ data }),
      (e: unknown) => c.alive && setState((s) => ({ ...s, error: (e as Error).message })),
    ).finally(() => {
      c.running = false;
      if (c.again && c.alive) {
        c.again = false;
        run();
      }
    });
  };
  const soon = () => {
    const c = control.current;
    if (c.timer !== undefined) return;
    c.timer = setTimeout(() => {
      c.timer = undefined;
      run();
    }, 25);
  };

  useEffect(() => {
    control.current.alive = true;
    setState({});
    run();
    return () => {
      control.current.alive = false;
    };
  }, [...deps, resets.value]);
  useEffect(() => onEvent((e) => current.current.matters(e) && soon()), []);
  useEffect(() => () => clearTimeout(control.current.timer), []);
  return { ...state, reload: run };
}
