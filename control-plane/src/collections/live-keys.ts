/**
 * The live keys of a collection's graph, each with its document id: a Map that also keeps a bitset
 * of its keys (bit `key % 8` of byte `key / 8`), which the index reads during its graph walk so dead
 * nodes take no place in the beam (`VectorIndex.search`). The bitset grows with the largest key;
 * keys are never reused, so it is about (keys ever issued) / 8 bytes.
 */
export class LiveKeys extends Map<number, string> {
  #bits = new Uint8Array(1024);

  override set(key: number, id: string): this {
    super.set(key, id);
    if (Math.floor(key / 8) >= this.#bits.length) this.#grow(key);
    this.#bits[Math.floor(key / 8)]! |= 1 << (key % 8);
    return this;
  }

  override delete(key: number): boolean {
    if (!super.delete(key)) return false;
    this.#bits[Math.floor(key / 8)]! &= ~(1 << (key % 8));
    return true;
  }

  override clear(): void {
    super.clear();
    this.#bits.fill(0);
  }

  /** The bitset, shared (not copied): valid until the next `set`, which may replace it. */
  get bits(): Uint8Array {
    return this.#bits;
  }

  #grow(key: number): void {
    let length = this.#bits.length;
    while (Math.floor(key / 8) >= length) length *= 2;
    const grown = new Uint8Array(length);
    grown.set(this.#bits);
    this.#bits = grown;
  }
}

/** A bitset of `keys` in the layout `LiveKeys.bits` has: what a metadata filter admits. */
export function keyBits(keys: Iterable<number>): Uint8Array {
  let max = 0;
  for (const key of keys) max = Math.max(max, key);
  const bits = new Uint8Array(Math.floor(max / 8) + 1);
  for (const key of keys) bits[Math.floor(key / 8)]! |= 1 << (key % 8);
  return bits;
}
