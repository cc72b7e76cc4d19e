/**
 * The baseline's side of a VM's console: the simulator's Unix socket, read
 * with plain `conn.read` into one reused buffer, and scanned for a reply.
 * Nothing of vmrunner's console stack is used here, so what this costs is
 * what any client would pay.
 *
 * @module
 */

const encoder = new TextEncoder();
const READ_BUFFER_BYTES = 64 * 1024;

/** The Unix socket that stands for `\\.\pipe\<id>-console`. */
export function consoleSocketPath(id: string): string {
  return `/tmp/hcs-pipe/${id}-console`;
}

/**
 * Connects to `path`, retrying every 2 ms until it accepts, since the
 * socket appears only once QEMU has started. QEMU drops console output
 * while nobody is connected, so a slow connect would lose the boot log.
 */
export async function connectRaw(
  path: string,
  timeoutMs = 30_000,
): Promise<RawConsole> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    try {
      return new RawConsole(await Deno.connect({ transport: "unix", path }));
    } catch (error) {
      const retriable = error instanceof Deno.errors.NotFound ||
        error instanceof Deno.errors.ConnectionRefused;
      if (!retriable || Date.now() >= deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

interface Waiter {
  needle: Uint8Array;
  resolve: (bytes: number) => void;
  reject: (error: unknown) => void;
}

/**
 * A console connection read all the time (QEMU must never find the socket
 * full). Bytes are counted and scanned for one awaited needle; they are
 * not kept, except a short tail so a needle split across reads is found.
 */
export class RawConsole {
  readonly #conn: Deno.UnixConn;
  #tail = new Uint8Array(0);
  #count = 0;
  #waiter: Waiter | undefined;
  #ended = false;
  #endError: unknown;
  readonly #pump: Promise<void>;

  constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
    this.#pump = this.#read();
  }

  /** Sends text to the guest. */
  async write(text: string): Promise<void> {
    const bytes = encoder.encode(text);
    for (let done = 0; done < bytes.length;) {
      done += await this.#conn.write(bytes.subarray(done));
    }
  }

  /**
   * Resolves with the number of bytes received from this call until the
   * end of `needle`'s first occurrence. Bytes before the call count only
   * through the tail kept for split needles, so call it before writing
   * whatever provokes the reply.
   */
  until(needle: string): Promise<number> {
    if (this.#waiter) throw new Error("Only one wait at a time");
    if (this.#ended) {
      return Promise.reject(
        this.#endError ?? new Error("The console closed"),
      );
    }
    this.#count = 0;
    this.#tail = new Uint8Array(0);
    return new Promise((resolve, reject) => {
      this.#waiter = { needle: encoder.encode(needle), resolve, reject };
    });
  }

  /** Closes the connection and waits for the reader to stop. */
  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch {
      // Already closed by the other side.
    }
    await this.#pump;
  }

  async #read(): Promise<void> {
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    try {
      while (true) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        this.#scan(buffer.subarray(0, n));
      }
    } catch (error) {
      // Closing the connection ourselves cancels the read.
      const closedHere = error instanceof Deno.errors.Interrupted ||
        error instanceof Deno.errors.BadResource;
      if (!closedHere) this.#endError = error;
    } finally {
      this.#ended = true;
      this.#waiter?.reject(this.#endError ?? new Error("The console closed"));
      this.#waiter = undefined;
    }
  }

  #scan(chunk: Uint8Array) {
    const waiter = this.#waiter;
    if (!waiter) return;
    const { needle } = waiter;
    const keep = needle.length - 1;
    const tail = this.#tail;
    // A needle split across reads starts in the tail; look there first.
    let at: number | undefined;
    if (tail.length > 0) {
      const found = indexOf(concat(tail, chunk.subarray(0, keep)), needle);
      if (found >= 0) at = found - tail.length;
    }
    if (at === undefined) {
      const found = indexOf(chunk, needle);
      if (found >= 0) at = found;
    }
    if (at !== undefined) {
      this.#waiter = undefined;
      waiter.resolve(this.#count + at + needle.length);
      return;
    }
    this.#count += chunk.length;
    this.#tail = keep === 0
      ? new Uint8Array(0)
      : chunk.length >= keep
      ? chunk.slice(chunk.length - keep)
      : concat(tail, chunk).slice(-keep);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

function indexOf(data: Uint8Array, needle: Uint8Array): number {
  const first = needle[0];
  for (let at = data.indexOf(first); at >= 0; at = data.indexOf(first, at)) {
    if (at + needle.length > data.length) return -1;
    let n = 1;
    while (n < needle.length && data[at + n] === needle[n]) n++;
    if (n === needle.length) return at;
    at++;
  }
  return -1;
}
