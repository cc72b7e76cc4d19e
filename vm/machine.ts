/**
 * A throwaway Linux VM: made and started through HCS, reached through its
 * serial console, and torn down however the run ends.
 *
 * @module
 */

import { ConsoleChannel } from "../console/channel.ts";
import { connectConsole } from "../console/connect.ts";
import { consolePipeName } from "../console/pipe_name.ts";
import { shellCommand } from "../console/quoting.ts";
import { type Credentials, ShellSession } from "../console/shell_session.ts";
import type { ConsoleTransport } from "../console/transport.ts";
import { ComputeSystem, type HcsOptions } from "../hcs/compute_system.ts";
import { type ComputeSystemDocument, vmDocument } from "../hcs/document.ts";
import { HcsProcess } from "../hcs/process.ts";
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

    options.debug?.(`creating ${id}`);
    const system = await ComputeSystem.create(id, document, options);
    const connecting = new AbortController();
    let transport: Promise<ConsoleTransport> | undefined;
    try {
      options.signal?.throwIfAborted();
      // Connect while the VM starts, so that little of the boot is missed.
      transport = connectConsole(pipe, { signal: connecting.signal });
      transport.catch(() => {});
      options.debug?.(`starting ${id}`);
      await system.start(options.signal);
      options.signal?.throwIfAborted();
      const channel = new ConsoleChannel(
        await raceExit(system, transport, options.signal),
        { log: options.consoleLog },
      );
      options.debug?.(`console ${pipe} connected`);
      return new Machine(system, channel, options);
    } catch (error) {
      connecting.abort();
      await transport?.then((t) => t.close(), () => {});
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
    const collected: Uint8Array[] = [];
    const output = io.output ?? ((bytes) => collected.push(bytes));
    if (this.#useProcesses && typeof command !== "string") {
      const status = await this.#runByProcess(command);
      if (status !== undefined) return { status, output: new Uint8Array(0) };
    }
    const status = await raceExit(
      this.system,
      this.shell.run(line, { output, input: io.input, signal: io.signal }),
      undefined,
    );
    return { status, output: joinBytes(collected) };
  }

  /**
   * Tries HcsCreateProcess once. Without a guest agent HCS either fails
   * or returns no stdio handles; the console is used from then on.
   */
  async #runByProcess(argv: readonly string[]): Promise<number | undefined> {
    this.#useProcesses = false;
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
      this.#options.debug?.(
        `HcsCreateProcess failed; using the console: ${
          (error as Error).message
        }`,
      );
      return undefined;
    }
    try {
      if (!process.hasStdio) {
        this.#options.debug?.(
          "HcsCreateProcess returned no stdio handles; using the console",
        );
        await process.terminate().catch(() => {});
        return undefined;
      }
      // A guest agent answered. Its stdio handles are pipes this build
      // cannot stream yet, so the console runs the command instead; the
      // agent's process is ended unused.
      this.#options.warn?.(
        "The guest has an agent (HcsCreateProcess works), but vmrunner " +
          "runs commands over the console",
      );
      await process.terminate().catch(() => {});
      return undefined;
    } finally {
      await process.close();
    }
  }

  /**
   * Stops the VM (a graceful shutdown, then termination) and releases the
   * console and the handle. Safe to call more than once.
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
    await this.system.stop().catch((error) => errors.push(error));
    await this.console.close().catch((error) => errors.push(error));
    await this.system.close().catch((error) => errors.push(error));
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) {
      throw new AggregateError(errors, `Cannot tear down ${this.id} cleanly`);
    }
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
      if (!exit) {
        throw new Error(
          `Lost the Host Compute Service while using ${system.id}`,
        );
      }
      throw new Error(
        exit.unexpected
          ? `The VM ${system.id} exited unexpectedly`
          : `The VM ${system.id} stopped`,
      );
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

function joinBytes(chunks: Uint8Array[]): Uint8Array {
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.length;
  }
  return joined;
}
