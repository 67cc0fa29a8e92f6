/** One async mutex per key: writers of one state instance run one at a time. */
export class KeyedMutex {
  #queues = new Map<string, (() => void)[]>();

  /** Resolves with a release function once the key is free; release is idempotent. */
  acquire(key: string): Promise<() => void> {
    const queue = this.#queues.get(key);
    if (!queue) {
      this.#queues.set(key, []);
      return Promise.resolve(this.#releaser(key));
    }
    return new Promise((resolve) => queue.push(() => resolve(this.#releaser(key))));
  }

  #releaser(key: string): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const queue = this.#queues.get(key)!;
      const next = queue.shift();
      if (next) next();
      else this.#queues.delete(key);
    };
  }
}
