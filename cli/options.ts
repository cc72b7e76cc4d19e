/**
 * vmrunner's command line: the flags its users already type (`-memory
 * 4096`, `-cpu 4`, `-debug`, `-id x`, `-i`), their GNU spellings, and the
 * `list` and `kill` commands.
 *
 * @module
 */

import {
  FlagError,
  type FlagTable,
  formatHelp,
  parseFlags,
  switchFlag,
  valueFlag,
} from "./flags.ts";
import { EXIT_HELP } from "./exit_codes.ts";
import {
  DEFAULT_TIMEOUTS,
  type HcsTimeouts,
  MAX_WAIT_MS,
} from "../hcs/timeouts.ts";
import { ESCAPE_HELP } from "../console/interactive.ts";
import { DEFAULT_READY_TIMEOUT_MS } from "../console/shell_session.ts";
import { DEFAULT_CONSOLE_TIMEOUT_MS } from "../console/transport.ts";
import {
  DEFAULT_CMDLINE,
  DEFAULT_CPUS,
  DEFAULT_MEMORY_MB,
} from "../vm/machine.ts";

/** What `vmrunner [options] [command...]` asks for. */
export interface RunRequest {
  kind: "run";
  /** The guest command's argv; empty with `interactive`. */
  command: string[];
  interactive: boolean;
  memoryMb: number;
  cpus: number;
  debug: boolean;
  verbose: boolean;
  id?: string;
  imageDir?: string;
  kernel?: string;
  initrd?: string;
  rootfs?: string;
  cmdline: string;
  /** Seconds the guest command may run; none when absent. */
  timeoutSeconds?: number;
  /** Seconds to wait for a shell on the console. */
  bootTimeoutSeconds: number;
  consoleOnly: boolean;
  readOnly: boolean;
  /** Serve the console pipe before the VM starts (`--pipe-server`). */
  pipeServer: boolean;
  user?: string;
  password?: string;
  consoleLog?: string;
}

/** `vmrunner list [--all]`. */
export interface ListRequest {
  kind: "list";
  all: boolean;
}

/** `vmrunner kill [--any-owner] <id>... | --all`. */
export interface KillRequest {
  kind: "kill";
  ids: string[];
  all: boolean;
  /** Also end named systems that another program made. */
  anyOwner: boolean;
}

/** `--help` or `--version`: text for stdout, and nothing else to do. */
export interface PrintRequest {
  kind: "print";
  text: string;
}

/** Any parsed command line. */
export type Request = RunRequest | ListRequest | KillRequest | PrintRequest;

/** The forms of the command line, for usage errors. */
export const USAGE = `Usage: vmrunner [options] [--] <command> [args...]
       vmrunner -i [options]
       vmrunner list [--all]
       vmrunner kill [--any-owner] <id>... | --all`;

/** A command line that cannot be run; the message says why. */
export class UsageError extends Error {
  /** Always `"UsageError"`. */
  override name = "UsageError";
}

/** vmrunner's version, as `--version` prints it. */
const VERSION = "0.1.0";

/** Seconds `--boot-timeout` gives a shell to answer unless told. */
const DEFAULT_BOOT_TIMEOUT_SECONDS = DEFAULT_READY_TIMEOUT_MS / 1000;

function positiveInteger(text: string): number {
  const number = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(number)) {
    throw new Error("must be a whole number");
  }
  if (number <= 0) throw new Error("must be greater than zero");
  return number;
}

/** The longest wait in seconds that a timer can count. */
const MAX_SECONDS = Math.floor(MAX_WAIT_MS / 1000);

/** Seconds to wait: above zero, and no more than timers can count. */
function seconds(text: string): number {
  const number = Number(text);
  if (text.trim() === "" || !Number.isFinite(number) || number <= 0) {
    throw new Error("must be a number of seconds above zero");
  }
  if (number > MAX_SECONDS) {
    throw new Error(`must be at most ${MAX_SECONDS} seconds (24 days)`);
  }
  return number;
}

function nonEmpty(text: string): string {
  if (text === "") throw new Error("must not be empty");
  return text;
}

/** Characters HCS ids and pipe names both take. */
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function vmId(text: string): string {
  if (!ID_PATTERN.test(text)) {
    throw new Error(
      "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a " +
        "letter or digit (it names the VM and its console pipe)",
    );
  }
  return text;
}

const HELP = switchFlag("help", "show this help", "h");

/** The flags of `vmrunner [options] <command>` and `vmrunner -i`. */
const RUN_FLAGS = {
  interactive: switchFlag(
    "interactive",
    "open an interactive shell on the console",
    "i",
  ),
  memory: valueFlag(
    "memory",
    "MB",
    `memory of the VM (default: ${DEFAULT_MEMORY_MB})`,
    positiveInteger,
  ),
  cpu: valueFlag(
    "cpu",
    "count",
    `virtual processors (default: ${DEFAULT_CPUS})`,
    positiveInteger,
  ),
  cpus: valueFlag("cpus", "count", undefined, positiveInteger),
  debug: switchFlag(
    "debug",
    "print the HCS document before the VM is created",
  ),
  id: valueFlag(
    "id",
    "id",
    "the VM's id (default: a fresh unique one)",
    vmId,
  ),
  imageDir: valueFlag(
    "image-dir",
    "dir",
    "folder with vmlinuz, initrd and rootfs.vhdx (default: vm-image " +
      "beside vmrunner, else in the working directory)",
    nonEmpty,
  ),
  kernel: valueFlag(
    "kernel",
    "file",
    "the kernel (default: <image-dir>/vmlinuz)",
    nonEmpty,
  ),
  initrd: valueFlag(
    "initrd",
    "file",
    "the initrd (default: <image-dir>/initrd)",
    nonEmpty,
  ),
  rootfs: valueFlag(
    "rootfs",
    "file",
    "the root disk, attached as SCSI 0:0 (default: <image-dir>/rootfs.vhdx)",
    nonEmpty,
  ),
  cmdline: valueFlag(
    "cmdline",
    "text",
    `the kernel command line (default: "${DEFAULT_CMDLINE}")`,
    nonEmpty,
  ),
  timeout: valueFlag(
    "timeout",
    "seconds",
    "interrupt the command after this long",
    seconds,
  ),
  bootTimeout: valueFlag(
    "boot-timeout",
    "seconds",
    "give up if no shell answers on the console within this long " +
      `(default: ${DEFAULT_BOOT_TIMEOUT_SECONDS})`,
    seconds,
  ),
  console: switchFlag(
    "console",
    "skip HcsCreateProcess; run over the serial console",
  ),
  readOnly: switchFlag(
    "read-only",
    "attach the root disk read-only (several VMs can share it)",
  ),
  pipeServer: switchFlag(
    "pipe-server",
    "create the console pipe before the VM, which then connects to it " +
      "(keeps the whole boot; see the README)",
  ),
  user: valueFlag(
    "user",
    "name",
    "account for a login prompt (default: root)",
    nonEmpty,
  ),
  password: valueFlag(
    "password",
    "text",
    "password for a login prompt",
    // An empty password is one a getty can ask for.
    (text) => text,
  ),
  consoleLog: valueFlag(
    "console-log",
    "file",
    "write the whole raw console, boot included, to a file",
    nonEmpty,
  ),
  verbose: switchFlag("verbose", "report progress on stderr"),
  version: switchFlag("version", "print vmrunner's version"),
  help: HELP,
} satisfies FlagTable;

const LIST_FLAGS = {
  all: switchFlag("all", "list every compute system, whoever owns it"),
  help: HELP,
} satisfies FlagTable;

const KILL_FLAGS = {
  all: switchFlag("all", "terminate every VM vmrunner made"),
  anyOwner: switchFlag(
    "any-owner",
    "also terminate named VMs another program made",
  ),
  help: HELP,
} satisfies FlagTable;

function runHelp(): string {
  return formatHelp({
    usage: [
      "vmrunner [options] [--] <command> [args...]",
      "vmrunner -i [options]",
    ],
    description: "Boot a throwaway Linux VM through the Windows Host " +
      "Compute Service and run a command in it, or open an interactive " +
      "shell (-i).",
    operands: [["command", "the command to run in the guest"]],
    flags: RUN_FLAGS,
    epilogue: `
Commands:
  vmrunner list [--all]          list vmrunner's VMs: id, state, owner, age
                                 (--all: every owner's)
  vmrunner kill <id>... | --all  terminate vmrunner's VMs (--any-owner <id>:
                                 another program's too)
  To run a guest command named list or kill, put -- before it.

Single-dash spellings work too: -memory 4096 -cpu 4 -debug -id my-vm.
In -i mode, leave with ${ESCAPE_HELP}.
${EXIT_HELP}

Environment:
  VMRUNNER_USER, VMRUNNER_PASSWORD  answer a login: prompt
${timeoutHelp()}`,
  });
}

/**
 * Parses vmrunner's arguments.
 *
 * @throws {UsageError} with a message naming what is wrong.
 */
export function parseArgs(
  args: readonly string[],
  env: Record<string, string | undefined> = {},
): Request {
  try {
    if (args[0] === "list") return parseList(args.slice(1));
    if (args[0] === "kill") return parseKill(args.slice(1));
    return parseRun(args, env);
  } catch (error) {
    if (error instanceof FlagError) {
      throw new UsageError(error.message + subcommandHint(error.unknownFlag));
    }
    throw error;
  }
}

/** Where a flag of `list` or `kill` given before them belongs. */
function subcommandHint(spelling: string | undefined): string {
  const name = spelling?.replace(/^--?/, "");
  const of = (flags: FlagTable, command: string) =>
    Object.values(flags).some((flag) => flag.name === name) ? [command] : [];
  const commands = [...of(LIST_FLAGS, "list"), ...of(KILL_FLAGS, "kill")];
  if (commands.length === 0) return "";
  return `; it is an option of ${commands.join(" and ")}: put it after ` +
    `the command (vmrunner ${commands[0]} --${name})`;
}

function parseRun(
  args: readonly string[],
  env: Record<string, string | undefined>,
): Request {
  const { flags: o, operands: command } = parseFlags(args, RUN_FLAGS);
  if (o.help) return { kind: "print", text: runHelp() };
  if (o.version) return { kind: "print", text: `vmrunner ${VERSION}\n` };
  if (!o.interactive && command.length === 0) {
    throw new UsageError(
      "Nothing to run: give a command (vmrunner ls /) or -i for a shell",
    );
  }
  if (o.interactive && command.length > 0) {
    throw new UsageError(
      `-i opens a shell and takes no command, but "${command[0]}" was given`,
    );
  }
  const cpus = o.cpus ?? o.cpu ?? DEFAULT_CPUS;
  const hostCpus = navigator.hardwareConcurrency;
  if (cpus > hostCpus) {
    throw new UsageError(
      `--cpu ${cpus} is more than this host's ${hostCpus} logical ` +
        "processors",
    );
  }
  const memoryMb = o.memory ?? DEFAULT_MEMORY_MB;
  checkMemory(memoryMb);
  return {
    kind: "run",
    command,
    interactive: Boolean(o.interactive),
    memoryMb,
    cpus,
    debug: Boolean(o.debug),
    verbose: Boolean(o.verbose),
    id: o.id,
    imageDir: o.imageDir,
    kernel: o.kernel,
    initrd: o.initrd,
    rootfs: o.rootfs,
    cmdline: o.cmdline ?? DEFAULT_CMDLINE,
    timeoutSeconds: o.timeout,
    bootTimeoutSeconds: o.bootTimeout ?? DEFAULT_BOOT_TIMEOUT_SECONDS,
    consoleOnly: Boolean(o.console),
    readOnly: Boolean(o.readOnly),
    pipeServer: Boolean(o.pipeServer),
    user: o.user ?? env.VMRUNNER_USER,
    password: o.password ?? env.VMRUNNER_PASSWORD,
    consoleLog: o.consoleLog,
  };
}

function checkMemory(memoryMb: number) {
  let totalMb: number | undefined;
  try {
    totalMb = Deno.systemMemoryInfo().total / 1024 / 1024;
  } catch {
    // Without permission to ask, HCS itself will refuse too much memory.
    return;
  }
  if (memoryMb > totalMb) {
    throw new UsageError(
      `--memory ${memoryMb} is more than this host's ${Math.floor(totalMb)} MB`,
    );
  }
}

function parseList(args: string[]): ListRequest | PrintRequest {
  const { flags, operands } = parseFlags(args, LIST_FLAGS, {
    interleaved: true,
  });
  if (flags.help) {
    return {
      kind: "print",
      text: formatHelp({
        usage: ["vmrunner list [options]"],
        description: "List vmrunner's VMs: id, state, owner, age.",
        flags: LIST_FLAGS,
      }),
    };
  }
  if (operands.length > 0) {
    throw new UsageError(
      `list takes no arguments, but "${operands[0]}" was given`,
    );
  }
  return { kind: "list", all: Boolean(flags.all) };
}

function parseKill(args: string[]): KillRequest | PrintRequest {
  const { flags, operands: ids } = parseFlags(args, KILL_FLAGS, {
    interleaved: true,
  });
  if (flags.help) {
    return {
      kind: "print",
      text: formatHelp({
        usage: ["vmrunner kill [options] <id>...", "vmrunner kill --all"],
        description: "Terminate VMs.",
        operands: [["id", "a VM to terminate"]],
        flags: KILL_FLAGS,
      }),
    };
  }
  const all = Boolean(flags.all);
  if (!all && ids.length === 0) {
    throw new UsageError("kill needs the ids of the VMs to stop, or --all");
  }
  if (all && ids.length > 0) {
    throw new UsageError("kill takes ids or --all, not both");
  }
  const anyOwner = Boolean(flags.anyOwner);
  if (all && anyOwner) {
    throw new UsageError(
      "kill --all ends only vmrunner's VMs; name others' with --any-owner ID",
    );
  }
  return { kind: "kill", ids, all, anyOwner };
}

/** What the environment changes about how long vmrunner waits. */
export interface TimeoutSettings {
  /** Overrides of the HCS operations' timeouts. */
  hcs: Partial<HcsTimeouts>;
  /** How long to wait for the console pipe to accept a connection. */
  consoleMs?: number;
}

/**
 * The environment variables that change a timeout, in seconds, like
 * hcsshim's HCSSHIM_TIMEOUT_*: for a slow host, or a test that wants a
 * failure fast.
 */
export const TIMEOUT_VARIABLES = {
  VMRUNNER_TIMEOUT_CREATE: "createMs",
  VMRUNNER_TIMEOUT_START: "startMs",
  VMRUNNER_TIMEOUT_SHUTDOWN: "shutdownMs",
  VMRUNNER_TIMEOUT_TERMINATE: "terminateMs",
  VMRUNNER_TIMEOUT_CALL: "callMs",
  VMRUNNER_TIMEOUT_CONSOLE: "consoleMs",
} as const;

/**
 * Reads the `VMRUNNER_TIMEOUT_*` variables.
 *
 * @throws {UsageError} naming a variable whose value is not a number of
 * seconds above zero.
 */
export function timeoutsFromEnv(
  env: Record<string, string | undefined>,
): TimeoutSettings {
  const settings: TimeoutSettings = { hcs: {} };
  for (const [name, key] of Object.entries(TIMEOUT_VARIABLES)) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    let ms: number;
    try {
      ms = Math.round(seconds(value) * 1000);
    } catch (error) {
      throw new UsageError(
        `${name} ${(error as Error).message}, not "${value}"`,
      );
    }
    if (key === "consoleMs") settings.consoleMs = ms;
    else settings.hcs[key] = ms;
  }
  return settings;
}

/** The operations with a timeout of their own; others have the call's. */
const OPERATION_TIMEOUTS: Record<string, keyof HcsTimeouts> = {
  HcsCreateComputeSystem: "createMs",
  HcsStartComputeSystem: "startMs",
  HcsShutdownComputeSystem: "shutdownMs",
  HcsTerminateComputeSystem: "terminateMs",
};

/** The variable that sets how long an HCS operation may take. */
export function timeoutVariableFor(operation: string): string {
  const key = OPERATION_TIMEOUTS[operation] ?? "callMs";
  const [name] = Object.entries(TIMEOUT_VARIABLES).find(([, setting]) =>
    setting === key
  )!;
  return name;
}

function timeoutHelp(): string {
  const seconds = (ms: number) => `${ms / 1000}`;
  return [
    "  VMRUNNER_TIMEOUT_CREATE    seconds to wait for HCS to create the VM " +
    `(${seconds(DEFAULT_TIMEOUTS.createMs)})`,
    "  VMRUNNER_TIMEOUT_START     ... to start it " +
    `(${seconds(DEFAULT_TIMEOUTS.startMs)})`,
    "  VMRUNNER_TIMEOUT_CONSOLE   ... for its console pipe to appear " +
    `(${seconds(DEFAULT_CONSOLE_TIMEOUT_MS)})`,
    "  VMRUNNER_TIMEOUT_SHUTDOWN  ... for it to shut down, else it is " +
    `terminated (${seconds(DEFAULT_TIMEOUTS.shutdownMs)})`,
    "  VMRUNNER_TIMEOUT_TERMINATE ... for a termination " +
    `(${seconds(DEFAULT_TIMEOUTS.terminateMs)})`,
    "  VMRUNNER_TIMEOUT_CALL      ... for any other HCS call " +
    `(${seconds(DEFAULT_TIMEOUTS.callMs)})`,
  ].join("\n");
}
