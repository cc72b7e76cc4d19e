/**
 * Web Streams over the stdio handles HcsCreateProcess returns: overlapped
 * pipe handles on Windows; on other systems, where a stand-in library
 * serves the API, file descriptors in the handle's place.
 *
 * @module
 */

import type { ConsoleTransport } from "./transport.ts";
import { pipeTransportFromHandle } from "./named_pipe.ts";

const LIBC_SYMBOLS = {
  // ssize_t read(int fd, void* buf, size_t count);
  read: {
    parameters: ["i32", "buffer", "usize"],
    result: "isize",
    nonblocking: true,
  },
  // ssize_t write(int fd, const void* buf, size_t count);
  write: {
    parameters: ["i32", "buffer", "usize"],
    result: "isize",
    nonblocking: true,
  },
  // int close(int fd);
  close: { parameters: ["i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

let libcLib: Deno.DynamicLibrary<typeof LIBC_SYMBOLS> | undefined;

function libc() {
  libcLib ??= Deno.dlopen(
    Deno.build.os === "darwin" ? "libc.dylib" : "libc.so.6",
    LIBC_SYMBOLS,
  );
  return libcLib.symbols;
}

const READ_SIZE = 64 * 1024;

/**
 * Streams over one stdio handle of an HCS process. `name` says which, for
 * error messages. The caller owns the result and must close it.
 */
export function handleTransport(
  handle: Deno.PointerObject,
  name: string,
): ConsoleTransport {
  if (Deno.build.os === "windows") return pipeTransportFromHandle(handle, name);
  return fdTransport(Number(Deno.UnsafePointer.value(handle)), name);
}

/**
 * Streams over a file descriptor. Reads and writes block a worker thread,
 * never the JavaScript thread.
 */
function fdTransport(fd: number, name: string): ConsoleTransport {
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      libc().close(fd);
    }
  };
  // One buffer for every read; each chunk leaves as a copy of its bytes,
  // not as a view that keeps a whole buffer alive.
  const buffer = new Uint8Array(READ_SIZE);
  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const count = Number(await libc().read(fd, buffer, BigInt(READ_SIZE)));
      if (count > 0) controller.enqueue(buffer.slice(0, count));
      else if (count === 0 || closed) controller.close();
      else controller.error(new Error(`Cannot read the process's ${name}`));
    },
  });
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      let offset = 0;
      while (offset < chunk.length) {
        const part = chunk.subarray(offset);
        const count = Number(
          await libc().write(fd, part, BigInt(part.length)),
        );
        if (count <= 0) {
          throw new Error(`Cannot write to the process's ${name}`);
        }
        offset += count;
      }
    },
    close,
  });
  return { readable, writable, close: () => Promise.resolve(close()) };
}
