/** Capacity held by one request: one permit per input, given back once when the request settles. */
export interface Permit {
  release(): void;
}

/**
 * A counting semaphore without waiting: overload is answered at once (429), never by queueing
 * more work than `total` inputs.
 */
export class Permits {
  readonly total: number;
  #available: number;

  constructor(total: number) {
    this.total = total;
    this.#available = total;
  }

  get inUse(): number {
    return this.total - this.#available;
  }

  tryAcquire(count: number): Permit | null {
    if (count > this.#available) return null;
    this.#available -= count;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#available += count;
      },
    };
  }
}
