/**
 * Output to a stream, in order, with the chunks that arrive during one
 * write joined into the next.
 *
 * @module
 */

import { ByteBuffer } from "../console/byte_buffer.ts";

/**
 * Writes chunks to a stream in order, joining those that arrive while a
 * write is under way into one. The guest's console delivers output a few
 * bytes at a time: a stream write for each queued hundreds of thousands of
 * them behind stdout (600 kB of output peaked at 250 MB) and spent the
 * time in the garbage collector.
 *
 * Output is taken as fast as it comes: a reader slower than the guest
 * makes the buffer grow, as nothing holds the guest back.
 */
export class BatchingWriter {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #onError: (error: unknown) => void;
  readonly #pending = new ByteBuffer(16 * 1024);
  #flushing: Promise<void> | undefined;
  #error: unknown;

  /** Writes to `writer`; `onError` hears of the first failed write. */
  constructor(
    writer: WritableStreamDefaultWriter<Uint8Array>,
    onError: (error: unknown) => void = () => {},
  ) {
    this.#writer = writer;
    this.#onError = onError;
  }

  /** The first write's failure; later output is dropped once there is one. */
  get error(): unknown {
    return this.#error;
  }

  /** Queues `bytes` after everything queued before. */
  write(bytes: Uint8Array): void {
    if (this.#error !== undefined) return;
    this.#pending.append(bytes);
    this.#flushing ??= this.#flush();
  }

  /** Resolves once everything queued has been written, or a write failed. */
  async drained(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  async #flush(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        // A copy: the buffer takes more output while this one is written.
        await this.#writer.write(this.#pending.take());
      }
    } catch (error) {
      this.#error = error ?? new Error("The write failed");
      this.#pending.clear();
      this.#onError(error);
    } finally {
      this.#flushing = undefined;
    }
  }
}
