/**
 * vmrunner's command line: the flags its users already type (`-memory
 * 4096`, `-cpu 4`, `-debug`, `-id x`, `-i`), their GNU spellings, and the
 * `list` and `kill` commands.
 *
 * @module
 */

import {
  Command,
  CommanderError,
  InvalidArgumentError,
  Option,
} from "commander";
import { EXIT_HELP } from "./exit_codes.ts";
import { DEFAULT_TIMEOUTS, type HcsTimeouts } from "../hcs/timeouts.ts";
import { ESCAPE_HELP } from "../console/interactive.ts";
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

/** `--help` or `--version`, already printed. */
export interface DoneRequest {
  kind: "done";
}

/** Any parsed command line. */
export type Request = RunRequest | ListRequest | KillRequest | DoneRequest;

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

/** The flags that users spell with one dash, Go style. */
const LONG_FLAGS = new Set([
  "memory",
  "cpu",
  "cpus",
  "debug",
  "id",
  "interactive",
  "image-dir",
  "kernel",
  "initrd",
  "rootfs",
  "cmdline",
  "timeout",
  "boot-timeout",
  "console",
  "read-only",
  "pipe-server",
  "user",
  "password",
  "console-log",
  "verbose",
  "help",
  "version",
]);

/**
 * Turns `-memory` into `--memory` (and `-memory=1` into `--memory=1`) for
 * vmrunner's own long flags, up to the guest command, which is left as is.
 */
export function normalizeArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--" || !arg.startsWith("-")) break;
    const name = arg.slice(1).split("=")[0];
    out.push(
      !arg.startsWith("--") && LONG_FLAGS.has(name) ? `-${arg}` : arg,
    );
    // A flag's value is not the start of the command.
    if (!arg.includes("=") && takesValue(arg.replace(/^-+/, ""))) {
      if (i + 1 < args.length) out.push(args[++i]);
    }
  }
  return out.concat(args.slice(i));
}

function takesValue(name: string): boolean {
  return [
    "memory",
    "cpu",
    "cpus",
    "id",
    "image-dir",
    "kernel",
    "initrd",
    "rootfs",
    "cmdline",
    "timeout",
    "boot-timeout",
    "user",
    "password",
    "console-log",
  ].includes(name);
}

function positiveInteger(what: string) {
  return (value: string): number => {
    const number = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(number)) {
      throw new InvalidArgumentError(`${what} must be a whole number.`);
    }
    if (number <= 0) {
      throw new InvalidArgumentError(`${what} must be greater than zero.`);
    }
    return number;
  };
}

function positiveNumber(what: string) {
  return (value: string): number => {
    const number = Number(value);
    if (value.trim() === "" || !Number.isFinite(number) || number <= 0) {
      throw new InvalidArgumentError(`${what} must be a number above zero.`);
    }
    return number;
  };
}

/** Characters HCS ids and pipe names both take. */
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function vmId(value: string): string {
  if (!ID_PATTERN.test(value)) {
    throw new InvalidArgumentError(
      "use 1 to 64 letters, digits, '.', '_' or '-', starting with a " +
        "letter or digit (it names the VM and its console pipe).",
    );
  }
  return value;
}

function runCommand(): Command {
  return new Command("vmrunner")
    .description(
      "Boot a throwaway Linux VM through the Windows Host Compute Service " +
        "and run a command in it,\nor open an interactive shell (-i).",
    )
    .usage("[options] [--] <command> [args...]\n       vmrunner -i [options]")
    .argument("[command...]", "the command to run in the guest")
    .option("-i, --interactive", "open an interactive shell on the console")
    .addOption(
      new Option("--memory <MB>", "memory of the VM")
        .argParser(positiveInteger("--memory"))
        .default(DEFAULT_MEMORY_MB),
    )
    .addOption(
      new Option("--cpu <count>", "virtual processors")
        .argParser(positiveInteger("--cpu"))
        .default(DEFAULT_CPUS),
    )
    .addOption(
      new Option("--cpus <count>").argParser(positiveInteger("--cpus"))
        .hideHelp(),
    )
    .option("--debug", "print the HCS document before the VM is created")
    .addOption(
      new Option("--id <id>", "the VM's id (default: a fresh unique one)")
        .argParser(vmId),
    )
    .option(
      "--image-dir <dir>",
      "folder with vmlinuz, initrd and rootfs.vhdx (default: vm-image " +
        "beside vmrunner, else in the working directory)",
    )
    .option("--kernel <file>", "the kernel (default: <image-dir>/vmlinuz)")
    .option("--initrd <file>", "the initrd (default: <image-dir>/initrd)")
    .option(
      "--rootfs <file>",
      "the root disk, attached as SCSI 0:0 (default: <image-dir>/rootfs.vhdx)",
    )
    .option("--cmdline <text>", "the kernel command line", DEFAULT_CMDLINE)
    .addOption(
      new Option("--timeout <seconds>", "interrupt the command after this long")
        .argParser(positiveNumber("--timeout")),
    )
    .addOption(
      new Option(
        "--boot-timeout <seconds>",
        "give up if no shell answers on the console within this long",
      ).argParser(positiveNumber("--boot-timeout")).default(120),
    )
    .option("--console", "skip HcsCreateProcess; run over the serial console")
    .option(
      "--read-only",
      "attach the root disk read-only (several VMs can share it)",
    )
    .option(
      "--pipe-server",
      "create the console pipe before the VM, which then connects to it " +
        "(keeps the whole boot; see the README)",
    )
    .option("--user <name>", "account for a login prompt (default: root)")
    .option("--password <text>", "password for a login prompt")
    .option(
      "--console-log <file>",
      "write the whole raw console, boot included, to a file",
    )
    .option("--verbose", "report progress on stderr")
    .version("vmrunner 0.1.0", "--version")
    .passThroughOptions()
    .addHelpText(
      "after",
      `
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
    )
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .action(() => {});
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
  const normalized = normalizeArgs(args);
  try {
    if (normalized[0] === "list") return parseList(normalized.slice(1));
    if (normalized[0] === "kill") return parseKill(normalized.slice(1));
    const program = runCommand();
    program.parse(normalized, { from: "user" });
    const o = program.opts();
    const command = program.args;
    if (command.length > 0 && command[0] === "--") command.shift();
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
    const cpus = o.cpus ?? o.cpu;
    const hostCpus = navigator.hardwareConcurrency;
    if (cpus > hostCpus) {
      throw new UsageError(
        `--cpu ${cpus} is more than this host's ${hostCpus} logical ` +
          "processors",
      );
    }
    checkMemory(o.memory);
    return {
      kind: "run",
      command,
      interactive: Boolean(o.interactive),
      memoryMb: o.memory,
      cpus,
      debug: Boolean(o.debug),
      verbose: Boolean(o.verbose),
      id: o.id,
      imageDir: o.imageDir,
      kernel: o.kernel,
      initrd: o.initrd,
      rootfs: o.rootfs,
      cmdline: o.cmdline,
      timeoutSeconds: o.timeout,
      bootTimeoutSeconds: o.bootTimeout,
      consoleOnly: Boolean(o.console),
      readOnly: Boolean(o.readOnly),
      pipeServer: Boolean(o.pipeServer),
      user: o.user ?? env.VMRUNNER_USER,
      password: o.password ?? env.VMRUNNER_PASSWORD,
      consoleLog: o.consoleLog,
    };
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === "commander.helpDisplayed" ||
        error.code === "commander.version"
      ) {
        return { kind: "done" };
      }
      throw new UsageError(
        error.message.replace(/^error: /, "").replace(/\.$/, ""),
      );
    }
    throw error;
  }
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

function parseList(args: string[]): ListRequest {
  const program = new Command("vmrunner list")
    .description("List vmrunner's VMs")
    .option("--all", "list every compute system, whoever owns it")
    .exitOverride()
    .configureOutput({ outputError: () => {} });
  program.parse(args, { from: "user" });
  return { kind: "list", all: Boolean(program.opts().all) };
}

function parseKill(args: string[]): KillRequest {
  const program = new Command("vmrunner kill")
    .description("Terminate VMs")
    .argument("[ids...]", "the VMs to terminate")
    .option("--all", "terminate every VM vmrunner made")
    .option("--any-owner", "also terminate named VMs another program made")
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .action(() => {});
  program.parse(args, { from: "user" });
  const all = Boolean(program.opts().all);
  if (!all && program.args.length === 0) {
    throw new UsageError("kill needs the ids of the VMs to stop, or --all");
  }
  if (all && program.args.length > 0) {
    throw new UsageError("kill takes ids or --all, not both");
  }
  const anyOwner = Boolean(program.opts().anyOwner);
  if (all && anyOwner) {
    throw new UsageError(
      "kill --all ends only vmrunner's VMs; name others' with --any-owner ID",
    );
  }
  return { kind: "kill", ids: program.args, all, anyOwner };
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

/** The console pipe's default wait, in milliseconds. */
export const DEFAULT_CONSOLE_TIMEOUT_MS = 30_000;

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
    const seconds = Number(value);
    if (value.trim() === "" || !Number.isFinite(seconds) || seconds <= 0) {
      throw new UsageError(
        `${name} must be a number of seconds above zero, not "${value}"`,
      );
    }
    const ms = Math.round(seconds * 1000);
    if (key === "consoleMs") settings.consoleMs = ms;
    else settings.hcs[key] = ms;
  }
  return settings;
}

/** The variable that sets how long an HCS operation may take. */
export function timeoutVariableFor(operation: string): string | undefined {
  const key: keyof HcsTimeouts = operation === "HcsCreateComputeSystem"
    ? "createMs"
    : operation === "HcsStartComputeSystem"
    ? "startMs"
    : operation === "HcsShutdownComputeSystem"
    ? "shutdownMs"
    : operation === "HcsTerminateComputeSystem"
    ? "terminateMs"
    : "callMs";
  return Object.entries(TIMEOUT_VARIABLES).find(([, k]) => k === key)?.[0];
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
