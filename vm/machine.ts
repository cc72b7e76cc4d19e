/**
 * A throwaway Linux VM: made and started through HCS, reached through its
 * serial console, and torn down however the run ends.
 *
 * @module
 */

import { ConsoleChannel } from "../console/channel.ts";
import {
  connectConsole,
  type ConsoleServer,
  serveConsole,
} from "../console/connect.ts";
import { consolePipeName } from "../console/pipe_name.ts";
import { shellCommand } from "../console/quoting.ts";
import { handleTransport } from "../console/handle_stream.ts";
import {
  ConsoleError,
  type Credentials,
  INTERRUPTED_STATUS,
  ShellSession,
} from "../console/shell_session.ts";
import {
  type ConsoleTransport,
  DEFAULT_CONSOLE_TIMEOUT_MS,
} from "../console/transport.ts";
import {
  ComputeSystem,
  type HcsOptions,
  type SystemExit,
} from "../hcs/compute_system.ts";
import { HcsError } from "../hcs/hcs_error.ts";
import { formatHresult, HRESULT } from "../hcs/hresult.ts";
import { ByteBuffer } from "../console/byte_buffer.ts";
import { type ComputeSystemDocument, vmDocument } from "../hcs/document.ts";
import { HcsProcess } from "../hcs/process.ts";
import { checkWaitMs, hcsTimeouts } from "../hcs/timeouts.ts";
import { type ImageChoice, resolveImage } from "./image.ts";

/** The kernel command line of the image contract. */
export const DEFAULT_CMDLINE = "console=ttyS0 root=/dev/sda rw init=/sbin/init";
/** Memory in MB when not chosen. */
export const DEFAULT_MEMORY_MB = 1024;
/** Virtual processors when not chosen. */
export const DEFAULT_CPUS = 2;
/** The owner tag of vmrunner's compute systems. */
export const OWNER = "vmrunner";

/** What to boot, and how. */
export interface MachineOptions extends ImageChoice, HcsOptions {
  /** The compute system id; a fresh unique one when absent. */
  id?: string;
  /** The kernel command line; {@linkcode DEFAULT_CMDLINE} when absent. */
  cmdline?: string;
  /** Memory in MB. */
  memoryMb?: number;
  /** Virtual processors. */
  cpus?: number;
  /** Attach the root disk read-only (`ro` replaces `rw` on the cmdline). */
  readOnly?: boolean;
  /** How to log in if the console asks. */
  credentials?: Credentials;
  /** Skip HcsCreateProcess and always use the console. */
  consoleOnly?: boolean;
  /** Receives the document before the VM is created. */
  onDocument?: (document: ComputeSystemDocument) => void;
  /** Receives every byte of the console, boot included. */
  consoleLog?: (chunk: Uint8Array) => void;
  /** Receives notes for the user. */
  warn?: (message: string) => void;
  /** Receives progress details. */
  debug?: (message: string) => void;
  /** Aborting stops booting; the VM is torn down. */
  signal?: AbortSignal;
  /** How long to wait for a shell on the console; default 120 s. */
  readyTimeoutMs?: number;
  /** How long to wait for the console pipe to appear; default 30 s. */
  consoleTimeoutMs?: number;
  /**
   * Serve the console pipe before the VM exists, for the VM to connect to
   * as a client (HCS.md 7), instead of connecting to the pipe the VM
   * serves. The console then has the whole boot.
   */
  pipeServer?: boolean;
}

/** Where a command's output goes and where its input comes from. */
export interface CommandIO {
  /** Receives output as it arrives; collected and returned when absent. */
  output?: (bytes: Uint8Array) => void;
  /** The command's stdin; /dev/null when absent. */
  input?: ReadableStream<Uint8Array>;
  /** Aborting interrupts the command (exit status 130). */
  signal?: AbortSignal;
}

/** The result of {@linkcode Machine.run}. */
export interface CommandResult {
  /** The guest command's exit status. */
  status: number;
  /** Its output, when no `output` callback took it. */
  output: Uint8Array;
}

/** A fresh id: `vmrunner-` and 12 hex digits. */
export function uniqueId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `vmrunner-${
    Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
}

/**
 * A running VM with a shell on its console.
 *
 * @example Run commands in a throwaway VM
 * ```ts ignore
 * await using vm = await Machine.boot({ memoryMb: 2048 });
 * const { status, output } = await vm.run(["uname", "-a"]);
 * ```
 */
export class Machine implements AsyncDisposable {
  /** The compute system. */
  readonly system: ComputeSystem;
  /** The console. */
  readonly console: ConsoleChannel;
  /** The shell on the console. */
  readonly shell: ShellSession;
  readonly #options: MachineOptions;
  #useProcesses: boolean;
  /** Whether a command ran through the guest agent. */
  #agentAnswered = false;
  #disposing: Promise<void> | undefined;

  private constructor(
    system: ComputeSystem,
    channel: ConsoleChannel,
    options: MachineOptions,
  ) {
    this.system = system;
    this.console = channel;
    this.#options = options;
    this.#useProcesses = !options.consoleOnly;
    this.shell = new ShellSession(channel, {
      credentials: options.credentials,
      readyTimeoutMs: options.readyTimeoutMs,
      warn: options.warn,
      debug: options.debug,
    });
  }

  /** The compute system's id. */
  get id(): string {
    return this.system.id;
  }

  /**
   * Creates and starts a VM and connects to its console. The shell is
   * reached on first use, or with {@linkcode Machine.ready}.
   */
  static async boot(options: MachineOptions = {}): Promise<Machine> {
    // Checked before anything is made: a timer set with more fires at once.
    for (const what of ["readyTimeoutMs", "consoleTimeoutMs"] as const) {
      const ms = options[what];
      if (ms !== undefined) checkWaitMs(what, ms);
    }
    hcsTimeouts(options.timeouts);
    const id = options.id ?? uniqueId();
    const image = await resolveImage(options);
    const pipe = consolePipeName(id);
    let cmdline = options.cmdline ?? DEFAULT_CMDLINE;
    if (options.readOnly) cmdline = cmdline.replace(/(^| )rw( |$)/, "$1ro$2");
    const document = vmDocument({
      owner: OWNER,
      kernel: image.kernel,
      initrd: image.initrd,
      rootfs: image.rootfs,
      readOnly: options.readOnly,
      cmdline,
      memoryMb: options.memoryMb ?? DEFAULT_MEMORY_MB,
      cpus: options.cpus ?? DEFAULT_CPUS,
      consolePipe: pipe,
    });
    options.onDocument?.(document);
    options.signal?.throwIfAborted();

    // A server must be there before the VM starts: HCS connects to it then,
    // once, and never again.
    const server = options.pipeServer
      ? await servePipe(pipe, options.signal)
      : undefined;
    if (server) options.debug?.(`serving the console pipe ${pipe}`);
    options.debug?.(`creating ${id}`);
    let system: ComputeSystem;
    try {
      system = await ComputeSystem.create(id, document, options);
    } catch (error) {
      await server?.close();
      throw error;
    }
    const connecting = new AbortController();
    let transport: Promise<ConsoleTransport> | undefined;
    try {
      options.signal?.throwIfAborted();
      // Connect while the VM starts, so that little of the boot is missed.
      transport = server
        ? acceptPipe(id, pipe, server, options.consoleTimeoutMs)
        : connectPipe(id, pipe, options.consoleTimeoutMs, {
          signal: connecting.signal,
        });
      transport.catch(() => {});
      options.debug?.(`starting ${id}`);
      await system.start(options.signal).catch((error) => {
        throw explainStartFailure(error, image.rootfs, options.readOnly);
      });
      options.signal?.throwIfAborted();
      options.debug?.(`waiting for the console ${pipe}`);
      const channel = new ConsoleChannel(
        await raceExit(system, transport, options.signal),
        { log: options.consoleLog },
      );
      options.debug?.(`console ${pipe} connected; waiting for a shell`);
      return new Machine(system, channel, options);
    } catch (error) {
      connecting.abort();
      await transport?.then((t) => t.close(), () => {});
      await server?.close();
      await system.stop({ shutdownMs: 0 }).catch(() => {});
      await system.close();
      throw error;
    }
  }

  /** Reaches the guest's shell and sets it up, if not done yet. */
  async ready(signal?: AbortSignal): Promise<void> {
    await raceExit(this.system, this.shell.ready(signal), signal);
  }

  /**
   * Runs a command in the guest. `command` is an argv, each element passed
   * to the guest unchanged, or a shell command line given as a string.
   */
  async run(
    command: readonly string[] | string,
    io: CommandIO = {},
  ): Promise<CommandResult> {
    const line = typeof command === "string" ? command : shellCommand(command);
    const collected = new ByteBuffer();
    const output = io.output ?? ((bytes) => collected.append(bytes));
    if (this.#useProcesses && typeof command !== "string") {
      const status = await this.#runByProcess(command, { ...io, output });
      if (status !== undefined) {
        return { status, output: collected.take() };
      }
    }
    const status = await raceExit(
      this.system,
      this.shell.run(line, { output, input: io.input, signal: io.signal }),
      undefined,
    );
    return { status, output: collected.take() };
  }

  /**
   * Runs a command through HcsCreateProcess, which needs a guest agent.
   * Without one HCS either fails or returns no stdio handles, and the
   * console is used from then on; `undefined` says so.
   */
  async #runByProcess(
    argv: readonly string[],
    io: CommandIO & { output: (bytes: Uint8Array) => void },
  ): Promise<number | undefined> {
    let process: HcsProcess;
    try {
      process = await HcsProcess.create(this.system, {
        CommandArgs: [...argv],
        WorkingDirectory: "/",
        CreateStdInPipe: true,
        CreateStdOutPipe: true,
        CreateStdErrPipe: true,
      });
    } catch (error) {
      this.#useProcesses = false;
      this.#options.debug?.(
        `HcsCreateProcess failed; using the console: ${
          (error as Error).message
        }`,
      );
      return undefined;
    }
    try {
      const { stdInput, stdOutput, stdError } = process.info;
      if (stdOutput === null) {
        this.#useProcesses = false;
        this.#options.debug?.(
          "HcsCreateProcess returned no stdio handles; using the console",
        );
        await process.terminate().catch(() => {});
        return undefined;
      }
      this.#options.debug?.("running the command through the guest agent");
      const status = await runWithStdio(
        process,
        io,
        stdInput,
        stdOutput,
        stdError,
      );
      this.#agentAnswered = true;
      return status;
    } finally {
      await process.close();
    }
  }

  /**
   * Stops the VM (a graceful shutdown, then termination; a VM booted
   * `readOnly` is terminated at once) and releases the console and the
   * handle. Safe to call more than once.
   */
  dispose(): Promise<void> {
    this.#disposing ??= this.#dispose();
    return this.#disposing;
  }

  /** Same as {@linkcode Machine.dispose}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  async #dispose() {
    const errors: unknown[] = [];
    // With its only disk read-only the guest has nothing to flush, and a
    // graceful shutdown would only add the guest's power-off (about 0.15 s
    // of a 7 s run here) to every run.
    // A guest that never gave us a shell or ran a command is unlikely to
    // honour a shutdown request either (its power-button handler may not
    // run yet): waiting for one would only add the shutdown timeout to a
    // failed run.
    const graceful = !this.#options.readOnly &&
      (this.shell.wasReady || this.#agentAnswered);
    const stopping = graceful
      ? this.system.stop()
      : this.system.stop({ shutdownMs: 0 });
    await stopping.catch((error) => errors.push(error));
    await this.console.close().catch((error) => errors.push(error));
    await this.system.close().catch((error) => errors.push(error));
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) {
      throw new AggregateError(errors, `Cannot tear down ${this.id} cleanly`);
    }
  }
}

/**
 * The VM ended, or HCS went away, while it was in use. `exit` says how it
 * ended; it is absent when the connection to HCS was lost.
 */
export class MachineExitedError extends Error {
  /** Always `"MachineExitedError"`. */
  override name = "MachineExitedError";
  /** How the VM ended, as HCS reported it; absent if HCS went away. */
  readonly exit: SystemExit | undefined;

  /** Describes the end of the VM `id`. */
  constructor(id: string, exit: SystemExit | undefined) {
    super(describeExit(id, exit));
    this.exit = exit;
  }
}

function describeExit(id: string, exit: SystemExit | undefined): string {
  if (!exit) {
    return "Lost the connection to the Host Compute Service while using " +
      `${id}; HCS ends the VM once vmrunner's handle is closed. Check that the ` +
      "vmcompute service is running (Get-Service vmcompute), then try again";
  }
  if (exit.unexpected) {
    return `The VM ${id} exited unexpectedly (${
      formatHresult(exit.status)
    }); its last console lines may say why`;
  }
  let exitType: unknown;
  try {
    exitType = JSON.parse(exit.data)?.ExitType;
  } catch {
    // Undocumented data (HCS.md 3.4): the status alone has to do.
  }
  if (exitType === "ForcedExit") {
    return `The VM ${id} was terminated by another program (such as ` +
      "vmrunner kill or hcsdiag kill)";
  }
  return `The VM ${id} stopped: the guest powered off or rebooted. If it ` +
    "was booting, --console-log FILE shows how far its kernel got; with too " +
    "little --memory it stops before it prints anything";
}

/**
 * Connects to the console pipe, turning "it never appeared" into an error
 * that says what to check.
 */
async function connectPipe(
  id: string,
  pipe: string,
  timeoutMs: number | undefined,
  options: { signal: AbortSignal },
): Promise<ConsoleTransport> {
  try {
    return await connectConsole(pipe, { ...options, timeoutMs });
  } catch (error) {
    if (!(error instanceof Deno.errors.TimedOut)) throw error;
    const seconds = (timeoutMs ?? DEFAULT_CONSOLE_TIMEOUT_MS) / 1000;
    throw new ConsoleError(
      `The console pipe ${pipe} of ${id} did not appear within ${seconds} s ` +
        "though the VM was started. Check that the HCS document (shown by " +
        `-debug) has VirtualMachine.Devices.ComPorts."0".NamedPipe ${pipe}, ` +
        "and that no other program holds that pipe name",
      "",
      { cause: error },
    );
  }
}

/** Serves the console pipe (`pipeServer`), saying what a failure means. */
async function servePipe(
  pipe: string,
  signal: AbortSignal | undefined,
): Promise<ConsoleServer> {
  try {
    return await serveConsole(pipe, { signal });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ConsoleError(
      `Cannot serve the console pipe ${pipe}: ${(error as Error).message}. ` +
        "Another program has that name: choose another -id, or run " +
        "without --pipe-server",
      "",
      { cause: error },
    );
  }
}

/** Waits for the VM to connect to the console pipe vmrunner serves. */
async function acceptPipe(
  id: string,
  pipe: string,
  server: ConsoleServer,
  timeoutMs = DEFAULT_CONSOLE_TIMEOUT_MS,
): Promise<ConsoleTransport> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() =>
      reject(
        new ConsoleError(
          `${id} did not connect to its console pipe ${pipe}, which ` +
            `vmrunner served, within ${timeoutMs / 1000} s of being ` +
            "started. This Hyper-V may not connect to an existing pipe: " +
            "run without --pipe-server",
          "",
        ),
      ), timeoutMs);
  });
  try {
    return await Promise.race([server.accepted, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Names the disk when a start failed because another VM writes it. */
function explainStartFailure(
  error: unknown,
  rootfs: string,
  readOnly: boolean | undefined,
): unknown {
  if (
    !(error instanceof HcsError) ||
    error.hresult !== HRESULT.SHARING_VIOLATION || readOnly
  ) {
    return error;
  }
  return new HcsError({
    operation: error.operation,
    id: error.id,
    hresult: error.hresult,
    events: [...error.events],
    detail: `The root disk ${rootfs} is in use by another VM`,
    cause: error,
  });
}

/**
 * Streams a process's stdio handles: output and errors to `io.output`,
 * `io.input` (or nothing) to its stdin, and waits for its exit code;
 * input still unread then is dropped. Aborting `io.signal` terminates the
 * process (status 130).
 */
async function runWithStdio(
  process: HcsProcess,
  io: CommandIO & { output: (bytes: Uint8Array) => void },
  stdInput: Deno.PointerValue,
  stdOutput: Deno.PointerObject,
  stdError: Deno.PointerValue,
): Promise<number> {
  const streams = [
    handleTransport(stdOutput, "stdout"),
    ...(stdError ? [handleTransport(stdError, "stderr")] : []),
  ];
  const stdin = stdInput ? handleTransport(stdInput, "stdin") : undefined;
  try {
    const copying = streams.map((stream) =>
      stream.readable.pipeTo(
        new WritableStream({ write: (bytes) => io.output(bytes) }),
      ).catch(() => {})
    );
    const onAbort = () => process.terminate().catch(() => {});
    io.signal?.addEventListener("abort", onAbort, { once: true });
    // Input goes on in the background: the command may end, or be
    // interrupted, before it has read everything (`head -1`, endless input).
    const inputDone = new AbortController();
    const feeding = (async () => {
      if (!stdin) return;
      if (io.input) {
        await io.input.pipeTo(stdin.writable, {
          preventClose: true,
          signal: inputDone.signal,
        }).catch(() => {});
      }
      // The command sees the end of its input.
      await process.closeStdin().catch(() => {});
      await stdin.close();
    })();
    try {
      const status = await process.wait();
      await Promise.all(copying);
      return io.signal?.aborted ? INTERRUPTED_STATUS : status;
    } finally {
      inputDone.abort();
      await feeding;
      io.signal?.removeEventListener("abort", onAbort);
    }
  } finally {
    await stdin?.close();
    for (const stream of streams) await stream.close();
  }
}

/** Fails `work` if the VM exits first. */
async function raceExit<T>(
  system: ComputeSystem,
  work: Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  const watching = new AbortController();
  const exited = system.waitForExit({ signal: watching.signal }).then(
    (exit) => {
      throw new MachineExitedError(system.id, exit);
    },
    () => new Promise<never>(() => {}),
  );
  const aborted = new Promise<never>((_, reject) => {
    if (signal?.aborted) reject(signal.reason);
    signal?.addEventListener("abort", () => reject(signal.reason), {
      once: true,
    });
  });
  try {
    return await Promise.race([work, exited, aborted]);
  } finally {
    watching.abort();
  }
}
