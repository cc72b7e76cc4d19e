/**
 * What the simulator's tests share: the library (through the product's own
 * binding, hcs/vmcompute_ffi.ts, plus the simulator's extra exports), small
 * wrappers that return HRESULTs and parsed documents, a notification
 * recorder, documents for the stub kernel and the real image, and the
 * console socket.
 *
 * @module
 */

import { join } from "node:path";
import {
  NOTIFICATION_CALLBACK,
  openVmcompute,
  outPointer,
  pointerFrom,
  readWideString,
  takeWideString,
  type Vmcompute,
  wideString,
} from "../../hcs/vmcompute_ffi.ts";

export const SIM_DIR = import.meta.dirname!;
export const BUILD_DIR = join(SIM_DIR, "build");
export const LIB_PATH = join(
  BUILD_DIR,
  Deno.build.os === "windows" ? "vmcompute.dll" : "libvmcompute.so",
);
/** A multiboot kernel that idles, echoes COM1, and resets on "q". */
export const STUB_KERNEL = join(BUILD_DIR, "stub-kernel.elf");
export const IMAGE_DIR = join(SIM_DIR, "..", "..", "vm-image");
export const IS_WINDOWS = Deno.build.os === "windows";

/** HRESULTs the tests compare against (HCS.md 4). */
export const HR = {
  S_OK: 0,
  E_INVALIDARG: 0x80070057,
  FILE_NOT_FOUND: 0x80070002,
  INVALID_HANDLE: 0x80070006,
  SHARING_VIOLATION: 0x80070020,
  NOT_SUPPORTED: 0x80070032,
  RPC_SERVER_UNAVAILABLE: 0x800706ba,
  PENDING: 0xc0370103,
  UNEXPECTED_EXIT: 0xc0370106,
  INVALID_JSON: 0xc037010d,
  SYSTEM_NOT_FOUND: 0xc037010e,
  ALREADY_EXISTS: 0xc037010f,
  ALREADY_STOPPED: 0xc0370110,
  PROCESS_ALREADY_STOPPED: 0x8037011f,
} as const;

/** Notification types (HCS.md 3.3). */
export const NOTIFY = {
  SystemExited: 1,
  CreateCompleted: 2,
  StartCompleted: 3,
  PauseCompleted: 4,
  ResumeCompleted: 5,
  ProcessExited: 0x00010000,
  ServiceDisconnect: 0x01000000,
} as const;

const EXTRA_SYMBOLS = {
  // HRESULT HcsSimConfigure(PCWSTR spec);
  HcsSimConfigure: { parameters: ["buffer"], result: "i32" },
  // HRESULT HcsSimGetCounters(PWSTR* json);
  HcsSimGetCounters: { parameters: ["buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

export const lib: Vmcompute = openVmcompute(LIB_PATH);
const extras = Deno.dlopen(LIB_PATH, EXTRA_SYMBOLS);
export const hcs = lib.symbols;

/** An HRESULT as the unsigned number HCS documents it as. */
export const u32 = (hr: number): number => hr >>> 0;

/** A call's HRESULT and its result document, parsed ("" if none). */
export interface Outcome {
  hr: number;
  // deno-lint-ignore no-explicit-any
  result: any;
}

// deno-lint-ignore no-explicit-any
function parse(text: string): any {
  return text === "" ? "" : JSON.parse(text);
}

/** Switches for this process (HcsSimConfigure); null restores $HCS_SIM. */
export function configure(spec: string | null): number {
  return u32(
    extras.symbols.HcsSimConfigure(spec === null ? null : wideString(spec)),
  );
}

/** This process's counters (HcsSimGetCounters). */
export function counters(): Record<string, number | boolean> {
  const out = outPointer();
  const hr = extras.symbols.HcsSimGetCounters(out);
  if (hr !== 0) throw new Error(`HcsSimGetCounters: ${hr}`);
  return JSON.parse(takeWideString(lib, out));
}

export interface Created extends Outcome {
  handle: Deno.PointerValue;
}

export async function create(
  id: string,
  doc: unknown,
  identity: Deno.PointerValue = null,
): Promise<Created> {
  const handle = outPointer(), result = outPointer();
  const hr = await hcs.HcsCreateComputeSystem(
    wideString(id),
    wideString(typeof doc === "string" ? doc : JSON.stringify(doc)),
    identity,
    handle,
    result,
  );
  return {
    hr: u32(hr),
    result: parse(takeWideString(lib, result)),
    handle: pointerFrom(handle),
  };
}

export async function open(id: string): Promise<Created> {
  const handle = outPointer(), result = outPointer();
  const hr = await hcs.HcsOpenComputeSystem(wideString(id), handle, result);
  return {
    hr: u32(hr),
    result: parse(takeWideString(lib, result)),
    handle: pointerFrom(handle),
  };
}

type Operation =
  | "HcsStartComputeSystem"
  | "HcsShutdownComputeSystem"
  | "HcsTerminateComputeSystem"
  | "HcsPauseComputeSystem"
  | "HcsResumeComputeSystem"
  | "HcsSaveComputeSystem"
  | "HcsModifyComputeSystem";

/** Start, Shutdown, Terminate, Pause, Resume, Save or Modify. */
export async function operate(
  op: Operation,
  handle: Deno.PointerValue,
  options = "",
): Promise<Outcome> {
  const result = outPointer();
  const fn = hcs[op] as (
    h: Deno.PointerValue,
    o: Uint16Array,
    r: BigUint64Array,
  ) => Promise<number>;
  const hr = await fn(handle, wideString(options), result);
  return { hr: u32(hr), result: parse(takeWideString(lib, result)) };
}

export async function properties(
  handle: Deno.PointerValue,
  query = "{}",
): Promise<Outcome & { properties: Record<string, unknown> }> {
  const props = outPointer(), result = outPointer();
  const hr = await hcs.HcsGetComputeSystemProperties(
    handle,
    wideString(query),
    props,
    result,
  );
  return {
    hr: u32(hr),
    result: parse(takeWideString(lib, result)),
    properties: parse(takeWideString(lib, props)) || {},
  };
}

export async function enumerate(
  query = "{}",
): Promise<Outcome & { systems: Record<string, unknown>[] }> {
  const list = outPointer(), result = outPointer();
  const hr = await hcs.HcsEnumerateComputeSystems(
    wideString(query),
    list,
    result,
  );
  return {
    hr: u32(hr),
    result: parse(takeWideString(lib, result)),
    systems: parse(takeWideString(lib, list)) || [],
  };
}

export async function close(handle: Deno.PointerValue): Promise<number> {
  return u32(await hcs.HcsCloseComputeSystem(handle));
}

export interface Notification {
  type: number;
  status: number;
  data: string;
  at: number;
}

/**
 * Records the notifications of one handle through a thread-safe callback
 * that only stores them, as the product's does.
 */
export class Recorder {
  readonly events: Notification[] = [];
  #waiters: (() => void)[] = [];
  #callback = Deno.UnsafeCallback.threadSafe(
    NOTIFICATION_CALLBACK,
    (type, _context, status, data) => {
      this.events.push({
        type,
        status: u32(status),
        data: readWideString(data),
        at: performance.now(),
      });
      for (const wake of this.#waiters.splice(0)) wake();
    },
  );
  #registration: Deno.PointerValue = null;

  get pointer(): Deno.PointerValue {
    return this.#callback.pointer;
  }

  /** Registers on a system (or, with process=true, a process) handle. */
  async register(handle: Deno.PointerValue, process = false): Promise<number> {
    const out = outPointer();
    const hr = process
      ? await hcs.HcsRegisterProcessCallback(handle, this.pointer, null, out)
      : await hcs.HcsRegisterComputeSystemCallback(
        handle,
        this.pointer,
        null,
        out,
      );
    this.#registration = pointerFrom(out);
    return u32(hr);
  }

  async unregister(process = false): Promise<number> {
    if (this.#registration === null) return 0;
    const registration = this.#registration;
    this.#registration = null;
    return u32(
      process
        ? await hcs.HcsUnregisterProcessCallback(registration)
        : await hcs.HcsUnregisterComputeSystemCallback(registration),
    );
  }

  /** The first notification of a type, waiting up to timeoutMs for it. */
  async next(type: number, timeoutMs = 10_000): Promise<Notification> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.events.find((e) => e.type === type);
      if (found) return found;
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(
          `no notification ${type} within ${timeoutMs} ms; got ${
            JSON.stringify(this.events)
          }`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Whether a notification of this type arrives within ms. */
  async arrives(type: number, ms: number): Promise<boolean> {
    try {
      await this.next(type, ms);
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    this.#callback.close();
  }
}

/** A unique id for one test's compute system. */
export function uniqueId(label: string): string {
  return `hcs-sim-test-${label}-${Date.now().toString(36)}-${
    Math.random().toString(36).slice(2, 6)
  }`;
}

export const pipeName = (id: string) => `\\\\.\\pipe\\${id}`;
/** The rule the product shares: \\.\pipe\NAME is /tmp/hcs-pipe/NAME. */
export const pipeSocket = (id: string) => `/tmp/hcs-pipe/${id}`;

export interface DocOptions {
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  memoryMb?: number;
  cpus?: number;
  owner?: string;
  terminateOnClose?: boolean;
  disks?: { path: string; readOnly?: boolean }[];
  com1?: boolean;
}

/** A schema-2 document as hcsshim writes one (HCS.md 6). */
export function vmDoc(id: string, o: DocOptions = {}): Record<string, unknown> {
  const attachments: Record<string, unknown> = {};
  (o.disks ?? []).forEach((d, lun) => {
    attachments[String(lun)] = {
      Type: "VirtualDisk",
      Path: d.path,
      ReadOnly: d.readOnly ?? false,
    };
  });
  const devices: Record<string, unknown> = {};
  if (o.disks?.length) devices.Scsi = { "0": { Attachments: attachments } };
  if (o.com1 ?? true) devices.ComPorts = { "0": { NamedPipe: pipeName(id) } };
  const kernelDirect: Record<string, string> = {
    KernelFilePath: o.kernel ?? STUB_KERNEL,
  };
  if (o.initrd) kernelDirect.InitRdPath = o.initrd;
  if (o.cmdline) kernelDirect.KernelCmdLine = o.cmdline;
  return {
    Owner: o.owner ?? "hcs-sim-test",
    SchemaVersion: { Major: 2, Minor: 1 },
    ShouldTerminateOnLastHandleClosed: o.terminateOnClose ?? true,
    VirtualMachine: {
      StopOnReset: true,
      Chipset: { LinuxKernelDirect: kernelDirect },
      ComputeTopology: {
        Memory: { SizeInMB: o.memoryMb ?? 64 },
        Processor: { Count: o.cpus ?? 1 },
      },
      Devices: devices,
    },
  };
}

/** The document for the real image (vm-image/), read-only root disk. */
export function imageDoc(id: string, o: DocOptions = {}) {
  return vmDoc(id, {
    kernel: join(IMAGE_DIR, "vmlinuz"),
    initrd: join(IMAGE_DIR, "initrd"),
    cmdline: "console=ttyS0 root=/dev/sda rw init=/sbin/init quiet",
    disks: [{ path: join(IMAGE_DIR, "rootfs.vhdx"), readOnly: true }],
    memoryMb: 256,
    ...o,
  });
}

export function imageBuilt(): boolean {
  return ["vmlinuz", "initrd", "rootfs.vhdx"].every((f) => {
    try {
      return Deno.statSync(join(IMAGE_DIR, f)).isFile;
    } catch {
      return false;
    }
  });
}

/**
 * A created, registered (and optionally started) stub VM that a test
 * tears down with `await using`.
 */
export class TestVm {
  constructor(
    readonly id: string,
    readonly handle: Deno.PointerValue,
    readonly recorder: Recorder,
  ) {}

  static async create(
    label: string,
    o: DocOptions & { start?: boolean } = {},
  ): Promise<TestVm> {
    const id = uniqueId(label);
    const created = await create(id, vmDoc(id, o));
    if (created.hr !== HR.PENDING && created.hr !== HR.S_OK) {
      throw new Error(
        `create ${id}: 0x${created.hr.toString(16)} ${
          JSON.stringify(created.result)
        }`,
      );
    }
    const recorder = new Recorder();
    await recorder.register(created.handle);
    const vm = new TestVm(id, created.handle, recorder);
    if (created.hr === HR.PENDING) {
      await recorder.next(NOTIFY.CreateCompleted);
    }
    if (o.start) {
      const started = await operate("HcsStartComputeSystem", vm.handle);
      if (started.hr === HR.PENDING) {
        const done = await recorder.next(NOTIFY.StartCompleted);
        if (done.status !== 0) throw new Error(`start: ${done.data}`);
      } else if (started.hr !== 0) {
        throw new Error(`start: ${JSON.stringify(started.result)}`);
      }
    }
    return vm;
  }

  async state(): Promise<string> {
    const p = await properties(this.handle);
    return p.properties.State as string;
  }

  async [Symbol.asyncDispose]() {
    await operate("HcsTerminateComputeSystem", this.handle);
    await this.recorder.unregister();
    await close(this.handle);
    this.recorder.close();
  }
}

/** A running process: its pid and its command line, arguments joined by
 * spaces. */
export interface ProcessInfo {
  pid: number;
  args: string;
}

/**
 * The processes whose command line mentions text. On Linux from `ps`
 * (reading /proc would take Deno's --allow-all); under Wine from the Linux
 * /proc, which is Z:\\proc there.
 */
export function processesMentioning(text: string): ProcessInfo[] {
  const all: ProcessInfo[] = [];
  if (IS_WINDOWS) {
    for (const entry of Deno.readDirSync("Z:\\proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      try {
        const cmdline = Deno.readTextFileSync(
          join("Z:\\proc", entry.name, "cmdline"),
        );
        all.push({
          pid: Number(entry.name),
          args: cmdline.replaceAll("\0", " "),
        });
      } catch {
        // gone meanwhile
      }
    }
  } else {
    const out = new Deno.Command("ps", { args: ["-ww", "-eo", "pid=,args="] })
      .outputSync();
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const match = /^\s*(\d+)\s+(.*)$/.exec(line);
      if (match) all.push({ pid: Number(match[1]), args: match[2] });
    }
  }
  return all.filter((p) => p.args.includes(text) && !p.args.startsWith("ps "));
}

/** Waits until check() holds, polling every 50 ms. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return await check();
}

/** What a console reads and writes through: a socket or a pipe. */
interface Transport {
  read(buf: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
}

const kernel32 = IS_WINDOWS
  ? Deno.dlopen("kernel32.dll", {
    CreateFileW: {
      parameters: ["buffer", "u32", "u32", "pointer", "u32", "u32", "pointer"],
      result: "pointer",
    },
    CreateNamedPipeW: {
      parameters: [
        "buffer",
        "u32",
        "u32",
        "u32",
        "u32",
        "u32",
        "u32",
        "pointer",
      ],
      result: "pointer",
    },
    ConnectNamedPipe: {
      parameters: ["pointer", "pointer"],
      result: "i32",
      nonblocking: true,
    },
    PeekNamedPipe: {
      parameters: ["pointer", "pointer", "u32", "pointer", "buffer", "pointer"],
      result: "i32",
    },
    ReadFile: {
      parameters: ["pointer", "buffer", "u32", "buffer", "pointer"],
      result: "i32",
    },
    WriteFile: {
      parameters: ["pointer", "buffer", "u32", "buffer", "pointer"],
      result: "i32",
    },
    CloseHandle: { parameters: ["pointer"], result: "i32" },
  })
  : null;

/**
 * A named pipe handle opened without FILE_FLAG_OVERLAPPED. Windows
 * serialises synchronous I/O on such a handle, so a pending ReadFile would
 * block every WriteFile (HCS.md 7): reads only take what PeekNamedPipe
 * says is there, polling every 10 ms.
 */
class PipeTransport implements Transport {
  #count = new Uint32Array(1);
  constructor(readonly handle: Deno.PointerValue) {}

  static valid(h: Deno.PointerValue): boolean {
    const v = Deno.UnsafePointer.value(h);
    return v !== 0n && v !== 0xffffffffffffffffn;
  }

  async read(buf: Uint8Array): Promise<number | null> {
    const k = kernel32!.symbols;
    for (;;) {
      const available = new Uint32Array(1);
      if (!k.PeekNamedPipe(this.handle, null, 0, null, available, null)) {
        return null; // broken: the other end is gone
      }
      if (available[0] > 0) {
        const n = Math.min(available[0], buf.length);
        if (!k.ReadFile(this.handle, buf, n, this.#count, null)) return null;
        return this.#count[0];
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  write(bytes: Uint8Array): Promise<number> {
    const k = kernel32!.symbols;
    if (!k.WriteFile(this.handle, bytes, bytes.length, this.#count, null)) {
      return Promise.reject(new Error("WriteFile failed"));
    }
    return Promise.resolve(this.#count[0]);
  }

  close(): void {
    kernel32!.symbols.CloseHandle(this.handle);
  }
}

/**
 * The caller's own server for a COM port, made before the VM starts so
 * that the VM connects to it (HCS.md 7): a listening Unix socket, or on
 * Windows a named pipe server.
 */
export class ConsoleServer {
  #listener?: Deno.Listener;
  #pipe?: Deno.PointerValue;

  constructor(readonly id: string) {
    if (IS_WINDOWS) {
      const GENERIC_DUPLEX = 3; // PIPE_ACCESS_DUPLEX; byte mode, blocking
      this.#pipe = kernel32!.symbols.CreateNamedPipeW(
        wideString(pipeName(id)),
        GENERIC_DUPLEX,
        0,
        1,
        65536,
        65536,
        0,
        null,
      );
      if (!PipeTransport.valid(this.#pipe)) throw new Error("CreateNamedPipeW");
    } else {
      Deno.mkdirSync("/tmp/hcs-pipe", { recursive: true });
      this.#listener = Deno.listen({ transport: "unix", path: pipeSocket(id) });
    }
  }

  /** The VM's connection, once it has made it. */
  async accept(): Promise<Console> {
    if (this.#listener) return new Console(await this.#listener.accept());
    await kernel32!.symbols.ConnectNamedPipe(this.#pipe!, null);
    return new Console(new PipeTransport(this.#pipe!));
  }

  close(): void {
    if (this.#listener) {
      this.#listener.close();
      try {
        Deno.removeSync(pipeSocket(this.id));
      } catch {
        // removed already
      }
    }
  }
}

/**
 * A VM's COM1 console: the named pipe on Windows, elsewhere the Unix
 * socket that stands for it.
 */
export class Console {
  text = "";
  #decoder = new TextDecoder();
  #buf = new Uint8Array(4096);
  #pending?: Promise<number | null>;
  constructor(readonly conn: Transport) {}

  /** Connects, retrying while the VM has not made its end yet. */
  static async connect(id: string, timeoutMs = 10_000): Promise<Console> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      try {
        return new Console(await Console.#open(id));
      } catch (error) {
        if (performance.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  static async #open(id: string): Promise<Transport> {
    if (!IS_WINDOWS) {
      return await Deno.connect({ transport: "unix", path: pipeSocket(id) });
    }
    const GENERIC_READ_WRITE = 0xc0000000, OPEN_EXISTING = 3;
    const handle = kernel32!.symbols.CreateFileW(
      wideString(pipeName(id)),
      GENERIC_READ_WRITE,
      0,
      null,
      OPEN_EXISTING,
      0,
      null,
    );
    if (!PipeTransport.valid(handle)) {
      throw new Error(`no pipe ${pipeName(id)}`);
    }
    return new PipeTransport(handle);
  }

  async write(text: string): Promise<void> {
    const bytes = new TextEncoder().encode(text);
    for (let off = 0; off < bytes.length;) {
      off += await this.conn.write(bytes.subarray(off));
    }
  }

  /** Reads until pattern matches what came since the last call; returns
   * all of that. A read still pending when it gives up is kept for the
   * next call, so that no byte is lost. */
  async until(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    while (!pattern.test(this.text)) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      this.#pending ??= this.conn.read(this.#buf);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        this.#pending,
        new Promise<"timeout">((r) =>
          timer = setTimeout(() => r("timeout"), left)
        ),
      ]);
      clearTimeout(timer);
      if (n === "timeout") break;
      this.#pending = undefined;
      if (n === null) break;
      this.text += this.#decoder.decode(this.#buf.subarray(0, n), {
        stream: true,
      });
    }
    const match = pattern.exec(this.text);
    if (!match) {
      throw new Error(
        `no ${pattern} on the console within ${timeoutMs} ms: ${
          JSON.stringify(this.text.slice(-400))
        }`,
      );
    }
    const seen = this.text;
    this.text = this.text.slice(match.index + match[0].length);
    return seen;
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}
