/**
 * The console transport on Windows: the VM's COM1 is a named pipe.
 *
 * Deno's own files and sockets would need `--allow-all` for a pipe path, so
 * the pipe is driven through kernel32 and ntdll with FFI. The handle is
 * overlapped: with a synchronous handle, Windows queues a write behind a
 * pending read, and a console always has a read pending. Each operation's
 * NTSTATUS is read from what the API returns (see `kernel32_ffi.ts`).
 *
 * Reading never waits for the consumer: one read is always pending, and
 * bytes nobody has read yet queue in memory, so the VM is never held up
 * writing to its serial port.
 *
 * @module
 */

import { pipeBaseName } from "./pipe_name.ts";
import {
  type ConsoleTransport,
  DEFAULT_CONSOLE_TIMEOUT_MS,
} from "./transport.ts";
import {
  allocate,
  describeStatus,
  FILE_CREATE,
  FILE_NON_DIRECTORY_FILE,
  FILE_OPEN,
  FILE_READ_ATTRIBUTES,
  FILE_SHARE_READ,
  FILE_SHARE_WRITE,
  FSCTL_PIPE_LISTEN,
  GENERIC_READ,
  GENERIC_WRITE,
  IO_STATUS_BLOCK_SIZE,
  isInvalidHandle,
  isNtError,
  kernel32,
  newOverlapped,
  ntdll,
  objectAttributes,
  overlappedBytes,
  overlappedStatus,
  readHandle,
  resetOverlapped,
  SECURITY_ANONYMOUS,
  STATUS,
  SYNCHRONIZE,
} from "../win32/kernel32_ffi.ts";

/** Options of {@linkcode connectNamedPipe}. */
export interface NamedPipeConnectOptions {
  /** Keep trying this long for the pipe to appear or be free. @default {30000} */
  timeoutMs?: number;
  /** Time between attempts. @default {100} */
  retryMs?: number;
  /** Stops the attempts; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of {@linkcode createNamedPipeServer}. */
export interface NamedPipeServerOptions {
  /**
   * Stops waiting for the client: the server closes and `connected` rejects
   * with the signal's reason. Not observed once a client has connected.
   */
  signal?: AbortSignal;
}

/** A pipe server made before the VM starts; the VM connects as its client. */
export interface NamedPipeServer extends ConsoleTransport {
  /**
   * Resolves when the client connects. Rejects if the server is closed or
   * aborted first. Reads start and writes go out only after it resolves.
   */
  readonly connected: Promise<void>;
}

/** A failed named pipe operation, with the pipe and the NTSTATUS. */
export class NamedPipeError extends Error {
  /** Always `"NamedPipeError"`. */
  override name = "NamedPipeError";
  /** The pipe, as `\\.\pipe\NAME`. */
  readonly path: string;
  /** The NTSTATUS the operation ended with. */
  readonly status: number;

  /** Makes an error whose message ends with the described `status`. */
  constructor(action: string, path: string, status: number) {
    super(`Cannot ${action} pipe "${path}": ${describeStatus(status)}`);
    this.path = path;
    this.status = status;
  }
}

/** The pipe does not exist yet, or every instance has a client. */
const RETRY_STATUSES: ReadonlySet<number> = new Set([
  STATUS.OBJECT_NAME_NOT_FOUND,
  STATUS.PIPE_NOT_AVAILABLE,
  STATUS.INSTANCE_NOT_AVAILABLE,
  STATUS.PIPE_BUSY,
]);

/** A read ending with one of these means the other end has gone. */
const EOF_STATUSES: ReadonlySet<number> = new Set([
  STATUS.PIPE_BROKEN, // ERROR_BROKEN_PIPE
  STATUS.PIPE_DISCONNECTED, // ERROR_PIPE_NOT_CONNECTED
  STATUS.PIPE_CLOSING, // ERROR_NO_DATA
  STATUS.END_OF_FILE, // ERROR_HANDLE_EOF
]);

/** As large as the pipe's own buffer, so one read can empty it. */
const READ_BUFFER_SIZE = 64 * 1024;
/** The pipe's buffer in each direction (CreateNamedPipeW's sizes). */
const PIPE_QUOTA = 64 * 1024;
/** Pipe I/O ignores the offset, but async handles must pass one. */
const ZERO_OFFSET = allocate(8);
/** CreateNamedPipeW's default wait for WaitNamedPipe: 50 ms, in -100 ns. */
const DEFAULT_TIMEOUT = new BigInt64Array(new ArrayBuffer(8)).fill(-500_000n);

/**
 * Opens the existing pipe server at `path` (`\\.\pipe\NAME`) as a client,
 * for the case where the VM made the pipe. Until the timeout, it retries
 * every `retryMs` while the pipe does not exist yet or is busy.
 *
 * @throws {TypeError} When `path` is not a `\\.\pipe\` path.
 * @throws {Deno.errors.TimedOut} When the pipe is still absent or busy
 *   after `timeoutMs`.
 * @throws {NamedPipeError} When the open fails for any other reason.
 */
export async function connectNamedPipe(
  path: string,
  options: NamedPipeConnectOptions = {},
): Promise<ConsoleTransport> {
  const {
    timeoutMs = DEFAULT_CONSOLE_TIMEOUT_MS,
    retryMs = 100,
    signal,
  } = options;
  const ntPath = toNtPath(path);
  const deadline = Date.now() + timeoutMs;
  while (true) {
    signal?.throwIfAborted();
    const out = allocate(8);
    const attributes = objectAttributes(ntPath, SECURITY_ANONYMOUS);
    // CreateFileW(GENERIC_READ | GENERIC_WRITE, no sharing, OPEN_EXISTING,
    // FILE_FLAG_OVERLAPPED), spelled out: no FILE_SYNCHRONOUS_IO_* option
    // is what makes the handle overlapped.
    const status = ntdll().NtCreateFile(
      out,
      // >>> 0: JS's | yields a signed 32-bit number, FFI wants a u32.
      (GENERIC_READ | GENERIC_WRITE | SYNCHRONIZE | FILE_READ_ATTRIBUTES) >>> 0,
      attributes.attributes,
      allocate(IO_STATUS_BLOCK_SIZE),
      null,
      0,
      0,
      FILE_OPEN,
      FILE_NON_DIRECTORY_FILE,
      null,
      0,
    );
    if (status === STATUS.SUCCESS) {
      return new PipeConnection(path, readHandle(out), false);
    }
    if (!RETRY_STATUSES.has(status)) {
      throw new NamedPipeError("connect to", path, status);
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new Deno.errors.TimedOut(
        `Cannot connect to pipe "${path}": it was not there or not free ` +
          `within ${timeoutMs} ms (last: ${describeStatus(status)})`,
      );
    }
    await delay(Math.min(retryMs, left), signal);
  }
}

/**
 * Creates the pipe server at `path` (`\\.\pipe\NAME`) for the VM to connect
 * to: overlapped, byte mode, one instance, failing if the name is taken.
 * Use it when vmrunner must own the pipe before the VM starts; Hyper-V then
 * connects once and does not reconnect.
 *
 * @throws {TypeError} When `path` is not a `\\.\pipe\` path.
 * @throws {NamedPipeError} When the pipe cannot be created, for example
 *   because another server has the name.
 */
export function createNamedPipeServer(
  path: string,
  options: NamedPipeServerOptions = {},
): NamedPipeServer {
  const { signal } = options;
  const ntPath = toNtPath(path);
  signal?.throwIfAborted();
  const out = allocate(8);
  const attributes = objectAttributes(ntPath);
  const status = ntdll().NtCreateNamedPipeFile(
    out,
    (GENERIC_READ | GENERIC_WRITE | SYNCHRONIZE) >>> 0,
    attributes.attributes,
    allocate(IO_STATUS_BLOCK_SIZE),
    FILE_SHARE_READ | FILE_SHARE_WRITE,
    // FILE_CREATE: never join another server's instances of the name.
    FILE_CREATE,
    0, // overlapped
    0, // FILE_PIPE_BYTE_STREAM_TYPE
    0, // FILE_PIPE_BYTE_STREAM_MODE
    0, // FILE_PIPE_QUEUE_OPERATION: blocking semantics
    1,
    PIPE_QUOTA,
    PIPE_QUOTA,
    DEFAULT_TIMEOUT,
  );
  if (status !== STATUS.SUCCESS) {
    throw new NamedPipeError("create", path, status);
  }
  return new PipeConnection(path, readHandle(out), true, signal);
}

/**
 * Streams over a pipe handle opened elsewhere, such as a stdio handle that
 * HcsCreateProcess returned; `name` names it in errors. The handle must be
 * open for overlapped I/O (a synchronous one would block the JavaScript
 * thread on every read). The transport owns it: `close()` closes it.
 *
 * @throws {TypeError} When the handle is null or INVALID_HANDLE_VALUE.
 */
export function pipeTransportFromHandle(
  handle: Deno.PointerValue,
  name: string,
): ConsoleTransport {
  if (isInvalidHandle(handle)) {
    throw new TypeError(`Cannot use the handle of ${name}: it is not valid`);
  }
  return new PipeConnection(name, handle, false);
}

/** `\\.\pipe\NAME` as the NT path `\??\pipe\NAME`. */
function toNtPath(path: string): string {
  return `\\??\\pipe\\${pipeBaseName(path)}`;
}

/** The buffers of one kind of overlapped operation (reads or writes). */
interface Operation {
  /** Manual-reset event the operation sets on completion. */
  event: Deno.PointerObject;
  /** OVERLAPPED whose first half is the IO_STATUS_BLOCK. */
  overlapped: Uint8Array<ArrayBuffer>;
  /** GetOverlappedResult's DWORD out-parameter. */
  transferred: Uint8Array<ArrayBuffer>;
}

interface Completion {
  status: number;
  bytes: number;
}

/** One end of a connected (or, for a server, listening) pipe. */
class PipeConnection implements NamedPipeServer {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly connected: Promise<void>;

  readonly #path: string;
  readonly #handle: Deno.PointerObject;
  // The listen and the reads share one OVERLAPPED: the reads start only
  // once the listen has finished.
  readonly #read: Operation;
  readonly #write: Operation;
  readonly #buffer = allocate(READ_BUFFER_SIZE);
  #readable!: ReadableStreamDefaultController<Uint8Array>;
  #writable!: WritableStreamDefaultController;
  #readableOpen = true;
  #closed = false;
  #closing: Promise<void> | undefined;
  // These settle (never reject) when the I/O they track has finished.
  readonly #readsDone: Promise<void>;
  #writesDone: Promise<void> = Promise.resolve();

  constructor(
    path: string,
    handle: Deno.PointerValue,
    server: boolean,
    signal?: AbortSignal,
  ) {
    this.#path = path;
    this.#handle = handle!;
    const k32 = kernel32();
    const events: Deno.PointerObject[] = [];
    try {
      this.#read = newOperation(events);
      this.#write = newOperation(events);
    } catch (error) {
      for (const event of events) k32.CloseHandle(event);
      k32.CloseHandle(this.#handle);
      throw error;
    }
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#readable = controller;
      },
      // Reading goes on after a cancel, to keep the VM's output flowing;
      // the bytes are dropped.
      cancel: () => {
        this.#readableOpen = false;
      },
    });
    this.writable = new WritableStream<Uint8Array>({
      start: (controller) => {
        this.#writable = controller;
      },
      write: (chunk) => this.#writeChunk(chunk),
      // A pipe has no half-close: closing the writable leaves the pipe open.
    });

    if (server) {
      this.connected = this.#listen(signal);
      // `connected` may never be awaited; a rejection must not crash.
      this.connected.catch(() => {});
    } else {
      this.connected = Promise.resolve();
    }
    this.#readsDone = this.connected.then(
      () => this.#readLoop().catch((error) => this.#failReadable(error)),
      (error) => this.#closed ? this.#endReadable() : this.#failReadable(error),
    );
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    // Cancels the listen, the read and any write; each then completes with
    // STATUS_CANCELLED and its loop sees #closed.
    kernel32().CancelIoEx(this.#handle, null);
    await this.#readsDone;
    await this.#writesDone;
    this.#endReadable();
    this.#writable.error(
      new Deno.errors.BadResource(`The pipe "${this.#path}" is closed`),
    );
    const k32 = kernel32();
    await k32.CloseHandleAsync(this.#handle);
    k32.CloseHandle(this.#read.event);
    k32.CloseHandle(this.#write.event);
  }

  /** Waits for the client of a server pipe. */
  async #listen(signal: AbortSignal | undefined): Promise<void> {
    const onAbort = () => this.close();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      resetOverlapped(this.#read.overlapped);
      const status = ntdll().NtFsControlFile(
        this.#handle,
        this.#read.event,
        null,
        null,
        this.#read.overlapped,
        FSCTL_PIPE_LISTEN,
        null,
        0,
        null,
        0,
      );
      const { status: result } = await this.#complete(this.#read, status);
      // PIPE_CONNECTED: the client came before the listen did.
      if (result === STATUS.SUCCESS || result === STATUS.PIPE_CONNECTED) {
        return;
      }
      if (signal?.aborted) throw signal.reason;
      throw new NamedPipeError(
        this.#closed ? "wait for a client (closed first) on" : "listen on",
        this.#path,
        result,
      );
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Keeps one read pending until EOF, an error or close(). */
  async #readLoop(): Promise<void> {
    const nt = ntdll();
    while (!this.#closed) {
      resetOverlapped(this.#read.overlapped);
      const status = nt.NtReadFile(
        this.#handle,
        this.#read.event,
        null,
        null,
        this.#read.overlapped,
        this.#buffer,
        this.#buffer.length,
        ZERO_OFFSET,
        null,
      );
      const { status: result, bytes } = await this.#complete(
        this.#read,
        status,
      );
      if (result === STATUS.SUCCESS) {
        if (bytes > 0 && this.#readableOpen) {
          this.#readable.enqueue(this.#buffer.slice(0, bytes));
        }
      } else if (EOF_STATUSES.has(result)) {
        break;
      } else if (!(result === STATUS.CANCELLED && this.#closed)) {
        this.#failReadable(new NamedPipeError("read from", this.#path, result));
        return;
      }
    }
    this.#endReadable();
  }

  #writeChunk(chunk: Uint8Array): Promise<void> {
    const written = this.connected.then(() => this.#writeAll(chunk));
    this.#writesDone = written.then(() => {}, () => {});
    return written;
  }

  async #writeAll(chunk: Uint8Array): Promise<void> {
    // Our own copy, off V8's heap: the OS reads it after this call returns.
    const data = allocate(chunk.length);
    data.set(chunk);
    const nt = ntdll();
    let offset = 0;
    while (offset < data.length) {
      if (this.#closed) {
        throw new Deno.errors.BadResource(`The pipe "${this.#path}" is closed`);
      }
      const part = data.subarray(offset);
      resetOverlapped(this.#write.overlapped);
      const status = nt.NtWriteFile(
        this.#handle,
        this.#write.event,
        null,
        null,
        this.#write.overlapped,
        part,
        part.length,
        ZERO_OFFSET,
        null,
      );
      const { status: result, bytes } = await this.#complete(
        this.#write,
        status,
      );
      if (result !== STATUS.SUCCESS) {
        throw new NamedPipeError("write to", this.#path, result);
      }
      offset += bytes;
    }
  }

  /**
   * Finishes an operation that an Nt* call started with `status`. A pending
   * one is waited for on a worker thread; an error returned at once has
   * touched neither the OVERLAPPED nor the event.
   */
  async #complete(operation: Operation, status: number): Promise<Completion> {
    if (status === STATUS.PENDING) {
      await kernel32().GetOverlappedResult(
        this.#handle,
        operation.overlapped,
        operation.transferred,
        1,
      );
      status = overlappedStatus(operation.overlapped);
      if (status === STATUS.PENDING) {
        // GetOverlappedResult only returns once the operation is complete;
        // treating this as complete would reuse a live OVERLAPPED.
        throw new Error(
          `Cannot wait on pipe "${this.#path}": GetOverlappedResult returned ` +
            "while the operation was pending",
        );
      }
    } else if (isNtError(status)) {
      return { status, bytes: 0 };
    }
    return { status, bytes: overlappedBytes(operation.overlapped) };
  }

  #endReadable(): void {
    if (this.#readableOpen) {
      this.#readableOpen = false;
      this.#readable.close();
    }
  }

  #failReadable(error: unknown): void {
    if (this.#readableOpen) {
      this.#readableOpen = false;
      this.#readable.error(error);
    }
  }
}

/** Makes an operation's buffers; its event is added to `events` too. */
function newOperation(events: Deno.PointerObject[]): Operation {
  // Manual reset, not signalled: the Nt* call resets it when it starts.
  const event = kernel32().CreateEventW(null, 1, 0, null);
  if (isInvalidHandle(event)) {
    throw new Error("Cannot create an event for pipe I/O: CreateEventW failed");
  }
  events.push(event!);
  return {
    event: event!,
    overlapped: newOverlapped(event),
    transferred: allocate(4),
  };
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
