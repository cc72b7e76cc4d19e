/**
 * Bytes gathered in one buffer that doubles as it fills.
 *
 * @module
 */

/**
 * Bytes appended in one buffer that doubles as it fills. The console
 * delivers output a few bytes at a time; kept as a list of chunks, a
 * 2 MiB `cat` made some 300,000 of them, 120 MB of heap that every garbage
 * collection had to copy while QEMU waited for its reads.
 */
export class ByteBuffer {
  #buffer: Uint8Array;
  #length = 0;

  /** Starts with room for `capacity` bytes. */
  constructor(capacity = 4096) {
    this.#buffer = new Uint8Array(capacity);
  }

  /** How many bytes it holds. */
  get length(): number {
    return this.#length;
  }

  /** Adds `bytes` at the end. */
  append(bytes: Uint8Array): void {
    const needed = this.#length + bytes.length;
    if (needed > this.#buffer.length) {
      const grown = new Uint8Array(Math.max(needed, 2 * this.#buffer.length));
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(bytes, this.#length);
    this.#length = needed;
  }

  /** A copy of what it holds; it is emptied, and keeps its room. */
  take(): Uint8Array {
    const taken = this.#buffer.slice(0, this.#length);
    this.#length = 0;
    return taken;
  }

  /** Forgets what it holds. */
  clear(): void {
    this.#length = 0;
  }
}
