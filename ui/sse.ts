// A reader of server-sent events (the WHATWG format), fed text as it arrives: the page reads
// /v1/events with fetch, so that it can send the admin secret, which EventSource cannot.

export interface SseEvent {
  /** The event's id, if it had one. */
  id?: string;
  event: string;
  data: string;
}

/** Splits a stream of text into events; `push` returns those completed by the text given. */
export class SseParser {
  #buffer = "";
  #data: string[] = [];
  #event = "";
  #id: string | undefined;

  push(text: string): SseEvent[] {
    this.#buffer += text;
    const out: SseEvent[] = [];
    for (;;) {
      const match = /\r\n|\n|\r/.exec(this.#buffer);
      // A lone \r at the end may be the start of \r\n: wait for more.
      if (!match || (match[0] === "\r" && match.index === this.#buffer.length - 1)) break;
      const line = this.#buffer.slice(0, match.index);
      this.#buffer = this.#buffer.slice(match.index + match[0].length);
      const event = this.#line(line);
      if (event) out.push(event);
    }
    return out;
  }

  #line(line: string): SseEvent | undefined {
    if (line === "") {
      const data = this.#data;
      const event: SseEvent = { event: this.#event || "message", data: data.join("\n"), ...(this.#id !== undefined ? { id: this.#id } : {}) };
      this.#data = [];
      this.#event = "";
      this.#id = undefined;
      return data.length > 0 ? event : undefined;
    }
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.#data.push(value);
    else if (field === "event") this.#event = value;
    else if (field === "id" && !value.includes("\0")) this.#id = value;
    return undefined;
  }
}
