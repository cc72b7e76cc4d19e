/**
 * A console connection that is always read: bytes go to whoever listens, to
 * the raw log, and into a short history for error messages.
 *
 * The reader never waits for a listener. If nobody drained the console, the
 * guest would block writing to its UART and QEMU would drop bytes; a slow
 * consumer buffers on our side instead.
 *
 * @module
 */

import type { ConsoleTransport } from "./transport.ts";

/** Receives every chunk the guest sends. */
export type ConsoleListener = (chunk: Uint8Array) => void;

/** Options of {@linkcode ConsoleChannel}. */
export interface ConsoleChannelOptions {
  /** Receives a copy of every byte, boot output included. */
  log?: (chunk: Uint8Array) => void;
}

const HISTORY_BYTES = 8192;
const ANSI_ESCAPE = new RegExp(
  String.raw`(?:\x1b\[|\x9b)[\x20-\x3f]*[\x40-\x7e]|\x1b[\x40-\x5f]`,
  "g",
);

// Shared: readableText runs for every chunk while a shell is looked for.
const decoder = new TextDecoder();

/** Terminal text made readable: escape sequences and CRs removed. */
export function readableText(bytes: Uint8Array): string {
  return decoder.decode(bytes).replace(ANSI_ESCAPE, "").replaceAll("\r", "");
}

/** The console of one VM, read from the moment it is made. */
export class ConsoleChannel {
  readonly #transport: ConsoleTransport;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #listeners = new Set<ConsoleListener>();
  readonly #log: ((chunk: Uint8Array) => void) | undefined;
  // The last bytes received, as a ring.
  #history = new Uint8Array(HISTORY_BYTES);
  #historyEnd = 0;
  #historyFull = false;
  #lastDataAt = Date.now();
  #ended: Promise<void>;
  #isEnded = false;
  #endError: unknown;

  /** Starts reading `transport` at once. */
  constructor(
    transport: ConsoleTransport,
    options: ConsoleChannelOptions = {},
  ) {
    this.#transport = transport;
    this.#writer = transport.writable.getWriter();
    this.#log = options.log;
    this.#ended = this.#pump();
  }

  /** Resolves when the guest side closes or the connection fails. */
  get ended(): Promise<void> {
    return this.#ended;
  }

  /** Whether the connection has ended. */
  get isEnded(): boolean {
    return this.#isEnded;
  }

  /** When the last byte arrived, from `Date.now()`. */
  get lastDataAt(): number {
    return this.#lastDataAt;
  }

  /** Adds a listener; returns the function that removes it. */
  listen(listener: ConsoleListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Sends bytes or text (as UTF-8) to the guest. */
  async write(data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === "string"
      ? new TextEncoder().encode(data)
      : data;
    await this.#writer.write(bytes);
  }

  /**
   * The last lines the console showed, made readable, for error messages.
   * Never contains anything we typed unless the guest echoed it.
   */
  tail(lines = 12): string {
    const text = readableText(this.#historyBytes()).split("\n")
      .filter((line) => line.trim() !== "");
    return text.slice(-lines).join("\n");
  }

  /** The last few KiB the console showed, made readable. */
  recentText(): string {
    return readableText(this.#historyBytes());
  }

  /** Closes the connection; the pump ends. Idempotent. */
  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    await this.#transport.close();
    await this.#ended;
  }

  /** Why the connection ended, if it failed rather than closed. */
  get endError(): unknown {
    return this.#endError;
  }

  async #pump(): Promise<void> {
    try {
      for await (const chunk of this.#transport.readable) {
        this.#lastDataAt = Date.now();
        this.#remember(chunk);
        this.#log?.(chunk);
        for (const listener of this.#listeners) listener(chunk);
      }
    } catch (error) {
      this.#endError = error;
    } finally {
      this.#isEnded = true;
    }
  }

  #remember(chunk: Uint8Array) {
    const ring = this.#history;
    // The console mostly comes a few bytes at a time: copy those one by
    // one rather than make three views of each chunk.
    if (chunk.length <= 64) {
      let end = this.#historyEnd;
      for (let i = 0; i < chunk.length; i++) {
        ring[end++] = chunk[i];
        if (end === ring.length) {
          end = 0;
          this.#historyFull = true;
        }
      }
      this.#historyEnd = end;
      return;
    }
    const bytes = chunk.subarray(Math.max(0, chunk.length - ring.length));
    const first = Math.min(bytes.length, ring.length - this.#historyEnd);
    ring.set(bytes.subarray(0, first), this.#historyEnd);
    ring.set(bytes.subarray(first), 0);
    this.#historyFull ||= this.#historyEnd + bytes.length >= ring.length;
    this.#historyEnd = (this.#historyEnd + bytes.length) % ring.length;
  }

  #historyBytes(): Uint8Array {
    const ring = this.#history;
    if (!this.#historyFull) return ring.subarray(0, this.#historyEnd);
    const ordered = new Uint8Array(ring.length);
    ordered.set(ring.subarray(this.#historyEnd));
    ordered.set(
      ring.subarray(0, this.#historyEnd),
      ring.length - this.#historyEnd,
    );
    return ordered;
  }
}
