/**
 * The named pipe console transport against a pipe peer written here with
 * kernel32 directly. Windows only: under Wine, run by tests/wine/run.ts.
 */

import assert from "node:assert/strict";
import {
  connectNamedPipe,
  createNamedPipeServer,
  NamedPipeError,
  pipeTransportFromHandle,
} from "../../console/named_pipe.ts";
import {
  allocate,
  FILE_FLAG_OVERLAPPED,
  GENERIC_READ,
  GENERIC_WRITE,
  isInvalidHandle,
  kernel32,
  newOverlapped,
  ntdll,
  OPEN_EXISTING,
  overlappedBytes,
  overlappedStatus,
  PIPE_ACCESS_DUPLEX,
  PIPE_TYPE_BYTE,
  STATUS,
  WAIT_TIMEOUT,
  wideString,
} from "../../win32/kernel32_ffi.ts";

const isWindows = Deno.build.os === "windows";
// Loaded before any test, so the resource sanitizer does not count the two
// libraries, which stay loaded for the life of the process.
if (isWindows) {
  kernel32();
  ntdll();
}

/** Whether this "Windows" is Wine, which exports wine_get_version. */
function isWine(): boolean {
  if (!isWindows) return false;
  const probe = Deno.dlopen("ntdll.dll", {
    wine_get_version: { parameters: [], result: "pointer", optional: true },
  });
  const wine = probe.symbols.wine_get_version !== null;
  probe.close();
  return wine;
}
const underWine = isWine();

/** Windows-only test with both sanitizers: no pending op, no resource. */
function windowsTest(
  name: string,
  fn: () => Promise<void>,
  { needsRealWindows = false } = {},
): void {
  Deno.test({
    name: needsRealWindows
      ? `${name} [windows only, not under Wine]`
      : `${name} [windows only]`,
    ignore: !isWindows || (needsRealWindows && underWine),
    sanitizeOps: true,
    sanitizeResources: true,
    fn,
  });
}

let pipeCount = 0;
function uniquePipeName(): string {
  return `\\\\.\\pipe\\vmrunner-test-${Deno.pid}-${++pipeCount}`;
}

const PEER_TIMEOUT_MS = 10_000;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Settles like `promise`, or rejects after `ms` naming `what`. */
async function within<T>(ms: number, what: string, promise: Promise<T>) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not finish within ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `promise` is still pending after `ms`. */
async function stillPendingAfter(ms: number, promise: Promise<unknown>) {
  const pending = Symbol("pending");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await Promise.race([
    promise,
    new Promise((resolve) => timer = setTimeout(() => resolve(pending), ms)),
  ]);
  clearTimeout(timer);
  return result === pending;
}

/**
 * The values of the process's open handles. GetProcessHandleCount is a stub
 * under Wine (it reports 0), so each value is probed with
 * GetHandleInformation instead; a new handle takes the lowest free value,
 * far below the limit.
 */
function openHandles(limit = 8192): Set<number> {
  const k32 = kernel32();
  const flags = allocate(4);
  const open = new Set<number>();
  for (let value = 4; value < limit; value += 4) {
    const handle = Deno.UnsafePointer.create(BigInt(value));
    if (k32.GetHandleInformation(handle, flags)) open.add(value);
  }
  return open;
}

/** A handle's object type, such as "File" or "Event". */
function handleType(value: number): string {
  const info = allocate(1024);
  const status = ntdll().NtQueryObject(
    Deno.UnsafePointer.create(BigInt(value)),
    2, // ObjectTypeInformation: starts with the type's UNICODE_STRING name
    info,
    info.length,
    allocate(4),
  );
  if (status !== STATUS.SUCCESS) {
    return `(type unknown: 0x${status.toString(16)})`;
  }
  const view = new DataView(info.buffer);
  const name = Deno.UnsafePointer.create(view.getBigUint64(8, true));
  return new TextDecoder("utf-16le").decode(
    new Deno.UnsafePointerView(name!).getArrayBuffer(view.getUint16(0, true)),
  );
}

/**
 * Fails naming every handle opened since `before` and still open. Threads
 * are left out: Deno starts worker threads for FFI calls as it needs them
 * and keeps idle ones a while; the transport itself makes none.
 */
function assertNoNewHandles(before: Set<number>, when: string): void {
  const left = [...openHandles()]
    .filter((value) => !before.has(value))
    .map((value) => `${value}: ${handleType(value)}`)
    .filter((handle) => !handle.endsWith(": Thread"));
  assert.deepEqual(left, [], `handles left open ${when}`);
}

/** Bounds a step that should finish at once, so a hang fails one test. */
function soon<T>(promise: Promise<T>): Promise<T> {
  return within(5000, "a step", promise);
}

/** Closes with a time limit, so a close() that hangs fails one test only. */
function closeWithin(
  ms: number,
  transport: { close(): Promise<void> },
): Promise<void> {
  return within(ms, "close()", transport.close());
}

/** Bytes 0..255, the invalid UTF-8 a console can carry, then noise. */
function testBytes(size: number, seed: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  const special = [
    ...Array.from({ length: 256 }, (_, i) => i),
    ...[0x00, 0x00, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28],
    ...[0x8c, 0xbc, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xff, 0xfe, 0x80, 0x0d],
  ];
  bytes.set(special.slice(0, size));
  let state = seed;
  for (let i = special.length; i < size; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

function assertSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  assert.equal(actual.length, expected.length, "byte count");
  const at = actual.findIndex((byte, i) => byte !== expected[i]);
  assert.equal(at, -1, `first differing byte at offset ${at}`);
}

/** Reads `readable` until it has `size` bytes (or ends). */
async function readBytes(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  size: number,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (total < size) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.length;
  }
  const all = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return all;
}

/**
 * The other end of the pipe, written straight on kernel32 with overlapped
 * I/O and independent of the code under test. Every wait has a time limit,
 * so a broken transport fails a test instead of hanging the run.
 */
class PipePeer {
  readonly handle: Deno.PointerObject;
  readonly #read = newPeerOperation();
  readonly #write = newPeerOperation();
  #accept: Promise<void> | undefined;

  private constructor(handle: Deno.PointerValue) {
    assert.ok(!isInvalidHandle(handle), "the peer's pipe handle is valid");
    this.handle = handle!;
  }

  /** A one-instance overlapped server that starts waiting for a client. */
  static server(path: string): PipePeer {
    const peer = new PipePeer(
      kernel32().CreateNamedPipeW(
        wideString(path),
        PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED,
        PIPE_TYPE_BYTE,
        1,
        65536,
        65536,
        0,
        null,
      ),
    );
    peer.accept();
    return peer;
  }

  /** An overlapped client of an existing server, as a VM would open it. */
  static client(path: string): PipePeer {
    return new PipePeer(
      kernel32().CreateFileW(
        wideString(path),
        (GENERIC_READ | GENERIC_WRITE) >>> 0,
        0,
        null,
        OPEN_EXISTING,
        FILE_FLAG_OVERLAPPED,
        null,
      ),
    );
  }

  /** Waits for the next client (server only). */
  accept(): void {
    // Called right after creating the server or disconnecting, before any
    // client can connect, so ConnectNamedPipe pends rather than reporting
    // ERROR_PIPE_CONNECTED (which only GetLastError would tell).
    const ok = kernel32().ConnectNamedPipe(this.handle, this.#read.overlapped);
    this.#accept = this.#finish(this.#read, ok, PEER_TIMEOUT_MS, "accept")
      .then(() => {});
  }

  /** Resolves once a client has connected (server only). */
  get accepted(): Promise<void> {
    return this.#accept!;
  }

  /** One read of at most `size` bytes. */
  async readSome(size = 65536, timeoutMs = PEER_TIMEOUT_MS) {
    const buffer = allocate(size);
    const op = this.#read;
    const ok = await kernel32().ReadFile(
      this.handle,
      buffer,
      size,
      null,
      op.overlapped,
    );
    const bytes = await this.#finish(op, ok, timeoutMs, "read");
    return buffer.slice(0, bytes);
  }

  /** Reads exactly `size` bytes. */
  async readExactly(size: number, timeoutMs = PEER_TIMEOUT_MS) {
    const all = new Uint8Array(size);
    let offset = 0;
    while (offset < size) {
      const chunk = await this.readSome(size - offset, timeoutMs);
      all.set(chunk, offset);
      offset += chunk.length;
    }
    return all;
  }

  /** Writes all of `data`. */
  async write(data: Uint8Array, timeoutMs = PEER_TIMEOUT_MS): Promise<void> {
    const copy = allocate(data.length);
    copy.set(data);
    let offset = 0;
    while (offset < copy.length) {
      const part = copy.subarray(offset);
      const ok = await kernel32().WriteFile(
        this.handle,
        part,
        part.length,
        null,
        this.#write.overlapped,
      );
      offset += await this.#finish(this.#write, ok, timeoutMs, "write");
    }
  }

  /** Waits until the other end has read everything written. */
  async flush(): Promise<void> {
    assert.ok(await kernel32().FlushFileBuffers(this.handle), "flush");
  }

  /** Drops the client (server only); unread data is discarded. */
  disconnect(): void {
    assert.ok(kernel32().DisconnectNamedPipe(this.handle), "disconnect");
  }

  /** Closes the handle; pending I/O must have finished. */
  close(): void {
    const k32 = kernel32();
    k32.CloseHandle(this.handle);
    k32.CloseHandle(this.#read.event);
    k32.CloseHandle(this.#write.event);
  }

  /** Cancels pending I/O, waits for it, then closes. */
  async abandon(): Promise<void> {
    kernel32().CancelIoEx(this.handle, null);
    await this.#accept?.catch(() => {});
    this.close();
  }

  async #finish(
    op: PeerOperation,
    ok: number,
    timeoutMs: number,
    what: string,
  ): Promise<number> {
    const k32 = kernel32();
    if (!ok && overlappedStatus(op.overlapped) === STATUS.PENDING) {
      if (await k32.WaitForSingleObject(op.event, timeoutMs) === WAIT_TIMEOUT) {
        k32.CancelIoEx(this.handle, op.overlapped);
        await k32.GetOverlappedResult(this.handle, op.overlapped, op.out, 1);
        throw new Error(`The test peer's ${what} timed out (${timeoutMs} ms)`);
      }
    }
    const status = overlappedStatus(op.overlapped);
    if (status !== STATUS.SUCCESS && status !== STATUS.PIPE_CONNECTED) {
      throw new Error(
        `The test peer's ${what} failed: 0x${status.toString(16)}`,
      );
    }
    return overlappedBytes(op.overlapped);
  }
}

interface PeerOperation {
  event: Deno.PointerObject;
  overlapped: Uint8Array<ArrayBuffer>;
  out: Uint8Array<ArrayBuffer>;
}

function newPeerOperation(): PeerOperation {
  const event = kernel32().CreateEventW(null, 1, 0, null)!;
  return { event, overlapped: newOverlapped(event), out: allocate(4) };
}

/** A server peer and our transport connected to it as the client. */
async function connectedPair() {
  const path = uniquePipeName();
  const peer = PipePeer.server(path);
  const transport = await connectNamedPipe(path, { timeoutMs: 5000 });
  await peer.accepted;
  return { path, peer, transport };
}

const encode = (text: string) => new TextEncoder().encode(text);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

// (a) ---------------------------------------------------------------------------

windowsTest("a write completes while a read is pending", async () => {
  const { peer, transport } = await connectedPair();
  const reader = transport.readable.getReader();
  const writer = transport.writable.getWriter();
  const firstRead = reader.read();
  await delay(100); // the transport's read is now pending in the OS
  await within(
    5000,
    "a write behind a pending read",
    writer.write(encode("ping")),
  );
  assert.equal(decode(await peer.readExactly(4)), "ping");
  assert.ok(await stillPendingAfter(0, firstRead), "the read is still pending");
  await peer.write(encode("pong"));
  assert.equal(decode((await soon(firstRead)).value!), "pong");
  await closeWithin(2000, transport);
  peer.close();
});

windowsTest(
  "a non-overlapped handle holds a write behind a pending read (why the transport is overlapped)",
  async () => {
    const path = uniquePipeName();
    const peer = PipePeer.server(path);
    const k32 = kernel32();
    // The client the transport must not be: CreateFileW without
    // FILE_FLAG_OVERLAPPED. Each blocking call runs on its own worker thread.
    const handle = k32.CreateFileW(
      wideString(path),
      (GENERIC_READ | GENERIC_WRITE) >>> 0,
      0,
      null,
      OPEN_EXISTING,
      0,
      null,
    );
    assert.ok(!isInvalidHandle(handle));
    await peer.accepted;
    const readBuffer = allocate(16);
    const read = k32.ReadFile(handle, readBuffer, 16, allocate(4), null);
    await delay(200);
    const write = k32.WriteFile(handle, encode("ping"), 4, allocate(4), null);
    assert.ok(
      await stillPendingAfter(2000, write),
      "the write should wait behind the read: this is the deadlock",
    );
    // Only data for the read releases the write.
    await peer.write(encode("x"));
    assert.equal(await within(5000, "the blocked read", read), 1);
    assert.equal(await within(5000, "the blocked write", write), 1);
    assert.equal(decode(await peer.readExactly(4)), "ping");
    await k32.CloseHandleAsync(handle);
    peer.close();
  },
  // Windows serialises synchronous I/O on one file object; Wine 10 does
  // not, so there the write goes straight through (checked: it completes
  // in a few ms) and the deadlock cannot be shown.
  { needsRealWindows: true },
);

windowsTest(
  "kernel32 ReadFile leaves no trace of an immediate EOF (why the transport uses NtReadFile)",
  async () => {
    const path = uniquePipeName();
    const peer = PipePeer.server(path);
    const client = PipePeer.client(path);
    await peer.accepted;
    peer.close();
    const k32 = kernel32();
    const event = k32.CreateEventW(null, 1, 0, null)!;
    const overlapped = newOverlapped(event);
    const ok = await k32.ReadFile(
      client.handle,
      allocate(16),
      16,
      null,
      overlapped,
    );
    // FALSE, as for a pending read; only GetLastError, which Deno's FFI
    // does not keep, would tell ERROR_BROKEN_PIPE apart from
    // ERROR_IO_PENDING. A wait for this read would never end.
    assert.equal(ok, 0);
    assert.equal(overlappedStatus(overlapped), STATUS.PENDING);
    assert.equal(await k32.WaitForSingleObject(event, 0), WAIT_TIMEOUT);
    k32.CloseHandle(event);
    client.close();
  },
);

// (b) ---------------------------------------------------------------------------

windowsTest(
  "bytes pass unchanged both ways, with NUL, invalid UTF-8 and 1 MiB, at once",
  async () => {
    const { peer, transport } = await connectedPair();
    const up = testBytes(1024 * 1024 + 3, 1);
    const down = testBytes(1024 * 1024 + 5, 2);
    const writer = transport.writable.getWriter();
    const reader = transport.readable.getReader();
    const sendUp = (async () => {
      // Small writes, a view into a larger buffer, then the bulk in one go.
      await writer.write(up.subarray(0, 1));
      await writer.write(up.subarray(1, 300));
      const framed = new Uint8Array(1000);
      framed.set(up.subarray(300, 700), 50);
      await writer.write(framed.subarray(50, 450));
      await writer.write(up.subarray(700));
    })();
    const [, receivedUp, , receivedDown] = await within(
      30_000,
      "2 MiB of duplex traffic",
      Promise.all([
        sendUp,
        peer.readExactly(up.length),
        peer.write(down),
        readBytes(reader, down.length),
      ]),
    );
    assertSameBytes(receivedUp, up);
    assertSameBytes(receivedDown, down);
    await closeWithin(2000, transport);
    peer.close();
  },
);

// (c) ---------------------------------------------------------------------------

windowsTest("connectNamedPipe() retries until the server appears", async () => {
  const path = uniquePipeName();
  const started = Date.now();
  const connecting = connectNamedPipe(path, { timeoutMs: 5000, retryMs: 50 });
  connecting.catch(() => {}); // a failure is reported by the await below
  await delay(400);
  const peer = PipePeer.server(path);
  const transport = await within(3000, "connecting", connecting);
  await peer.accepted;
  assert.ok(Date.now() - started >= 400, "it connected after the delay");
  await soon(transport.writable.getWriter().write(encode("hi")));
  assert.equal(decode(await peer.readExactly(2)), "hi");
  await closeWithin(2000, transport);
  peer.close();
});

windowsTest("connectNamedPipe() times out naming the pipe", async () => {
  const path = uniquePipeName();
  const started = Date.now();
  await assert.rejects(
    connectNamedPipe(path, { timeoutMs: 300, retryMs: 100 }),
    (error: Error) => {
      assert.ok(error instanceof Deno.errors.TimedOut, String(error));
      assert.ok(error.message.includes(path), error.message);
      assert.match(error.message, /within 300 ms/);
      assert.match(error.message, /STATUS_OBJECT_NAME_NOT_FOUND/);
      assert.match(error.message, /ERROR_FILE_NOT_FOUND 2/);
      return true;
    },
  );
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 300 && elapsed < 2000, `took ${elapsed} ms`);
});

windowsTest("connectNamedPipe() waits while the pipe is busy", async () => {
  const { path, peer, transport: first } = await connectedPair();
  // Busy: its only instance has a client.
  await assert.rejects(
    connectNamedPipe(path, { timeoutMs: 200, retryMs: 50 }),
    (error: Error) => {
      assert.ok(error instanceof Deno.errors.TimedOut, String(error));
      assert.match(error.message, /STATUS_PIPE_NOT_AVAILABLE|PIPE_BUSY/);
      return true;
    },
  );
  const second = connectNamedPipe(path, { timeoutMs: 5000, retryMs: 50 });
  second.catch(() => {}); // a failure is reported by the await below
  await delay(300);
  await closeWithin(2000, first);
  peer.disconnect();
  peer.accept();
  const transport = await within(3000, "connecting once free", second);
  await peer.accepted;
  await closeWithin(2000, transport);
  peer.close();
});

windowsTest("connectNamedPipe() stops when aborted", async () => {
  const controller = new AbortController();
  const reason = new Error("stop");
  setTimeout(() => controller.abort(reason), 100);
  await assert.rejects(
    connectNamedPipe(uniquePipeName(), { signal: controller.signal }),
    (error) => error === reason,
  );
});

windowsTest(
  "connectNamedPipe() refuses a path outside \\\\.\\pipe\\",
  async () => {
    await assert.rejects(connectNamedPipe("C:\\temp\\x"), TypeError);
  },
);

// (d) ---------------------------------------------------------------------------

windowsTest("the readable ends when the server closes the pipe", async () => {
  const { path, peer, transport } = await connectedPair();
  await peer.write(encode("bye"));
  peer.close(); // ERROR_BROKEN_PIPE on the client's read
  const reader = transport.readable.getReader();
  const received = await within(
    5000,
    "reading to the end",
    readBytes(reader, 4),
  );
  assert.equal(decode(received), "bye");
  assert.deepEqual(await soon(reader.read()), { value: undefined, done: true });
  // Writing to a closed pipe fails, naming the pipe and the status.
  await assert.rejects(
    soon(transport.writable.getWriter().write(encode("late"))),
    (error: Error) => {
      assert.ok(error instanceof NamedPipeError, String(error));
      assert.equal(error.path, path);
      assert.ok(error.message.includes(path), error.message);
      assert.match(error.message, /STATUS_PIPE_\w+ 0xC0000/);
      return true;
    },
  );
  await closeWithin(2000, transport);
});

windowsTest(
  "the readable ends when the server disconnects the client",
  async () => {
    const { peer, transport } = await connectedPair();
    await peer.write(encode("bye"));
    await peer.flush(); // DisconnectNamedPipe drops unread data
    peer.disconnect(); // ERROR_PIPE_NOT_CONNECTED on the client's read
    const reader = transport.readable.getReader();
    const received = await within(
      5000,
      "reading to the end",
      readBytes(reader, 4),
    );
    assert.equal(decode(received), "bye");
    assert.equal((await soon(reader.read())).done, true);
    await closeWithin(2000, transport);
    peer.close();
  },
);

// (e) ---------------------------------------------------------------------------

windowsTest(
  "close() with a read pending returns promptly and leaves no handle",
  async () => {
    // The runtime's own lazy handles (worker threads) come with the first
    // round, so counting starts after it.
    for (let round = 0; round < 4; round++) {
      const before = openHandles();
      const { peer, transport } = await connectedPair();
      const reader = transport.readable.getReader();
      const pendingRead = reader.read();
      await delay(50);
      const started = performance.now();
      const closing = transport.close();
      assert.equal(transport.close(), closing, "close() is idempotent");
      await within(1000, "close()", closing);
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 500, `close() took ${elapsed.toFixed(0)} ms`);
      assert.deepEqual(await soon(pendingRead), {
        value: undefined,
        done: true,
      });
      await closeWithin(2000, transport);
      await assert.rejects(
        soon(transport.writable.getWriter().write(encode("x"))),
        Deno.errors.BadResource,
      );
      peer.close();
      if (round > 0) {
        assertNoNewHandles(before, `after round ${round}`);
      }
    }
  },
);

windowsTest("close() with a write pending cancels the write", async () => {
  const before = openHandles();
  const { peer, transport } = await connectedPair();
  // More than the pipe holds while the peer reads nothing: the write pends.
  const write = transport.writable.getWriter().write(
    new Uint8Array(256 * 1024),
  );
  assert.ok(await stillPendingAfter(200, write), "the write is pending");
  await closeWithin(1000, transport);
  await assert.rejects(soon(write), (error: Error) => {
    assert.ok(error instanceof NamedPipeError, String(error));
    assert.equal(error.status, STATUS.CANCELLED);
    return true;
  });
  peer.close();
  assertNoNewHandles(before, "after close()");
});

// (f) ---------------------------------------------------------------------------

windowsTest(
  "createNamedPipeServer() accepts the VM as its client",
  async () => {
    const before = openHandles();
    const path = uniquePipeName();
    const server = createNamedPipeServer(path);
    // One instance, and the name is ours: a second server is refused.
    assert.throws(() => createNamedPipeServer(path), (error: Error) => {
      assert.ok(error instanceof NamedPipeError, String(error));
      assert.ok(error.message.includes(path), error.message);
      return true;
    });
    // A write before the client comes waits for it.
    const early = server.writable.getWriter().write(encode("early "));
    early.catch(() => {}); // a failure is reported by the await below
    assert.ok(await stillPendingAfter(100, server.connected), "not connected");
    const vm = PipePeer.client(path);
    await within(3000, "connected", server.connected);
    await within(3000, "the early write", early);
    assert.equal(decode(await vm.readExactly(6)), "early ");
    await vm.write(encode("\x00from the VM\xff"));
    const reader = server.readable.getReader();
    assert.deepEqual(
      await soon(readBytes(reader, 13)),
      encode("\x00from the VM\xff"),
    );
    vm.close(); // the VM going away ends the server's readable
    assert.equal((await within(3000, "EOF", reader.read())).done, true);
    await closeWithin(2000, server);
    assertNoNewHandles(before, "after close()");
  },
);

windowsTest(
  "createNamedPipeServer() closed before a client connects",
  async () => {
    const before = openHandles();
    const path = uniquePipeName();
    const server = createNamedPipeServer(path);
    const reading = server.readable.getReader().read();
    await delay(50);
    await closeWithin(1000, server);
    await assert.rejects(soon(server.connected), (error: Error) => {
      assert.ok(error instanceof NamedPipeError, String(error));
      assert.equal(error.status, STATUS.CANCELLED);
      return true;
    });
    assert.deepEqual(await soon(reading), { value: undefined, done: true });
    // The name is free again.
    await closeWithin(2000, createNamedPipeServer(path));
    assertNoNewHandles(before, "after close()");
  },
);

windowsTest("createNamedPipeServer() stops waiting when aborted", async () => {
  const before = openHandles();
  const controller = new AbortController();
  const server = createNamedPipeServer(uniquePipeName(), {
    signal: controller.signal,
  });
  const reason = new Error("stop");
  setTimeout(() => controller.abort(reason), 50);
  await assert.rejects(soon(server.connected), (error) => error === reason);
  await closeWithin(2000, server);
  assertNoNewHandles(before, "after close()");
});

// (g) ---------------------------------------------------------------------------

windowsTest(
  "pipeTransportFromHandle() streams over a handle opened elsewhere, and closes it",
  async () => {
    assert.throws(() => pipeTransportFromHandle(null, "nothing"), TypeError);
    const before = openHandles();
    const path = uniquePipeName();
    const peer = PipePeer.server(path);
    // As HcsCreateProcess hands out a process's stdio: an overlapped handle.
    const handle = kernel32().CreateFileW(
      wideString(path),
      (GENERIC_READ | GENERIC_WRITE) >>> 0,
      0,
      null,
      OPEN_EXISTING,
      FILE_FLAG_OVERLAPPED,
      null,
    );
    await peer.accepted;
    const transport = pipeTransportFromHandle(handle, "stdout of process 7");
    await soon(transport.writable.getWriter().write(encode("up")));
    assert.equal(decode(await peer.readExactly(2)), "up");
    await peer.write(encode("down"));
    const reader = transport.readable.getReader();
    assert.equal(decode(await soon(readBytes(reader, 4))), "down");
    await closeWithin(2000, transport);
    peer.close();
    assertNoNewHandles(before, "after close(): the handle was closed");
  },
);
