/**
 * Names builds `v1`, `v2`, … per store: the numbers go on from the last one the store
 * recorded (the runtime reports it when it opens the store), and a build the runtime
 * rejects gives its number to the next one. A build is named only once the previous one's
 * load has settled, so no number is ever skipped.
 */
export class VersionNumbers {
  #next: number | undefined;
  #known!: () => void;
  readonly #ready = new Promise<void>((resolve) => (this.#known = resolve));
  #loading: { version: string; settle: () => void } | undefined;

  /** The runtime opened the store, whose last recorded version is `last` (0 for none). */
  storeOpened(last: number): void {
    this.#next ??= last + 1;
    this.#known();
  }

  /** The next build's name, once the store's last number is known. */
  async next(): Promise<string> {
    await this.#ready;
    return `v${this.#next!++}`;
  }

  /** Resolves once `version`'s load is accepted or rejected, or the runtime is gone. */
  loaded(version: string): Promise<void> {
    return new Promise((settle) => (this.#loading = { version, settle }));
  }

  /** A load settled: `version`, or whatever was loading when the runtime went away. */
  settle(version?: string): void {
    if (this.#loading && (version === undefined || this.#loading.version === version)) {
      this.#loading.settle();
      this.#loading = undefined;
    }
  }

  /** The runtime rejected the newest build: its number goes to the next one. */
  rejected(version: string): void {
    this.#next = Number(version.slice(1));
  }
}
