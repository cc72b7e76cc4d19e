/**
 * The console transport outside Windows: the Unix socket that stands in for
 * the VM's named pipe (see `pipe_name.ts`).
 *
 * @module
 */

import {
  type ConsoleTransport,
  DEFAULT_CONSOLE_TIMEOUT_MS,
} from "./transport.ts";

/** Options of {@linkcode connectUnixSocket}. */
export interface ConnectOptions {
  /** Keep trying this long for the socket to appear; default 30 s. */
  timeoutMs?: number;
  /** Time between attempts; default 100 ms. */
  retryMs?: number;
  /** Stops the attempts. */
  signal?: AbortSignal;
}

/**
 * Connects to the socket at `path`, retrying while it does not exist yet or
 * refuses connections, as a VM's pipe appears only once the VM starts.
 */
export async function connectUnixSocket(
  path: string,
  options: ConnectOptions = {},
): Promise<ConsoleTransport> {
  const {
    timeoutMs = DEFAULT_CONSOLE_TIMEOUT_MS,
    retryMs = 100,
    signal,
  } = options;
  const deadline = Date.now() + timeoutMs;
  while (true) {
    signal?.throwIfAborted();
    try {
      const conn = await Deno.connect({ transport: "unix", path });
      return fromConnection(conn);
    } catch (error) {
      const retriable = error instanceof Deno.errors.NotFound ||
        error instanceof Deno.errors.ConnectionRefused;
      if (!retriable) throw error;
      if (Date.now() >= deadline) {
        throw new Deno.errors.TimedOut(
          `Cannot connect to the console socket ${path}: it did not ` +
            `accept a connection within ${timeoutMs / 1000} s`,
        );
      }
    }
    await abortableDelay(retryMs, signal);
  }
}

/** Bytes asked for per read, into one buffer that every read reuses. */
const READ_BYTES = 64 * 1024;

/**
 * The connection's bytes as a stream of chunks, each a copy of what one
 * read returned. Deno's `conn.readable` gives every read a fresh 64 KiB
 * buffer, and QEMU's serial port writes a byte at a time, so a 23 kB boot
 * log came as some 20,000 one-byte chunks, each holding 64 KiB: about 30 MB
 * of resident memory, and work for the garbage collector while the guest
 * boots. Ends, and errors, as `conn.readable` does.
 */
function readableOf(conn: Deno.UnixConn): ReadableStream<Uint8Array> {
  const buffer = new Uint8Array(READ_BYTES);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let count: number | null;
      try {
        count = await conn.read(buffer);
      } catch (error) {
        controller.error(error);
        return;
      }
      if (count === null) controller.close();
      else controller.enqueue(buffer.slice(0, count));
    },
    cancel() {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    },
  }, { highWaterMark: 0 });
}

/** A connected socket as a console transport (for `serveConsole` too). */
export function fromConnection(conn: Deno.UnixConn): ConsoleTransport {
  let closed = false;
  return {
    readable: readableOf(conn),
    writable: conn.writable,
    close() {
      if (!closed) {
        closed = true;
        try {
          conn.close();
        } catch (error) {
          // The streams may have closed the connection already.
          if (!(error instanceof Deno.errors.BadResource)) throw error;
        }
      }
      return Promise.resolve();
    },
  };
}

function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", abort);
      resolve();
    }
    function abort() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener("abort", abort, { once: true });
  });
}
