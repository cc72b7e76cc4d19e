/**
 * What `vmrunner` does with a parsed command line.
 *
 * @module
 */

import { ZodError } from "zod";
import { ConsoleError } from "../console/shell_session.ts";
import { attachTerminal, ESCAPE_HELP } from "../console/interactive.ts";
import { ComputeSystem } from "../hcs/compute_system.ts";
import { HcsError } from "../hcs/hcs_error.ts";
import { ImageError } from "../vm/image.ts";
import { Machine, OWNER } from "../vm/machine.ts";
import { EXIT } from "./exit_codes.ts";
import { Interrupted, Interrupts } from "./interrupts.ts";
import * as log from "./log.ts";
import {
  type KillRequest,
  type ListRequest,
  parseArgs,
  type RunRequest,
  UsageError,
} from "./options.ts";

/** Runs vmrunner with `args` and returns the exit status. */
export async function main(args: readonly string[]): Promise<number> {
  let request;
  try {
    request = parseArgs(args, readEnv(["VMRUNNER_USER", "VMRUNNER_PASSWORD"]));
  } catch (error) {
    if (error instanceof UsageError) {
      log.error(`${error.message}\nSee vmrunner --help for usage.`);
      return EXIT.USAGE;
    }
    throw error;
  }
  try {
    switch (request.kind) {
      case "done":
        return 0;
      case "list":
        return await list(request);
      case "kill":
        return await kill(request);
      case "run":
        return await run(request);
    }
  } catch (error) {
    return report(error);
  }
}

function readEnv(names: string[]): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const name of names) {
    try {
      env[name] = Deno.env.get(name);
    } catch {
      // No permission to read it counts as not set.
    }
  }
  return env;
}

/** Prints an error the way the user needs it and picks the exit status. */
function report(error: unknown): number {
  if (error instanceof Interrupted) return error.status;
  if (error instanceof UsageError || error instanceof ImageError) {
    log.error(error.message);
    return EXIT.USAGE;
  }
  if (error instanceof ZodError) {
    log.error(
      "The VM settings are not valid: " +
        error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`)
          .join("; "),
    );
    return EXIT.USAGE;
  }
  if (error instanceof HcsError) {
    log.error(error.message);
    return EXIT.HCS;
  }
  if (error instanceof ConsoleError) {
    log.error(error.message);
    return EXIT.CONSOLE;
  }
  if (error instanceof Deno.errors.TimedOut) {
    log.error(
      `${error.message}. The VM started but its console pipe never ` +
        "appeared; check that the HCS document has a ComPorts entry",
    );
    return EXIT.CONSOLE;
  }
  log.error(
    `Unexpected failure: ${
      error instanceof Error ? error.stack ?? error.message : String(error)
    }`,
  );
  return EXIT.INTERNAL;
}

async function run(request: RunRequest): Promise<number> {
  log.setVerbose(request.verbose);
  using interrupts = new Interrupts((signal, count) => {
    if (count === 1) log.warn(`${signal}: stopping the VM`);
    else if (count === 2) log.warn(`${signal} again: terminating the VM now`);
  });
  const stopSignal = interrupts.stop.signal;
  const consoleLog = request.consoleLog
    ? await Deno.open(request.consoleLog, {
      write: true,
      create: true,
      truncate: true,
    })
    : undefined;
  let machine: Machine | undefined;
  let status: number | undefined;
  try {
    machine = await Machine.boot({
      id: request.id,
      imageDir: request.imageDir,
      kernel: request.kernel,
      initrd: request.initrd,
      rootfs: request.rootfs,
      cmdline: request.cmdline,
      memoryMb: request.memoryMb,
      cpus: request.cpus,
      readOnly: request.readOnly,
      consoleOnly: request.consoleOnly || request.interactive,
      credentials: { user: request.user, password: request.password },
      onDocument: request.debug
        ? (document) => log.info(JSON.stringify(document, null, 2))
        : undefined,
      consoleLog: consoleLog && ((chunk) => consoleLog.writeSync(chunk)),
      warn: log.warn,
      debug: log.debug,
      signal: stopSignal,
      readyTimeoutMs: request.bootTimeoutSeconds * 1000,
    });
    status = request.interactive
      ? await interactive(machine, stopSignal, request.bootTimeoutSeconds)
      : await command(machine, request, stopSignal);
  } catch (error) {
    if (stopSignal.aborted) status = interrupts.status;
    else if (machine && !(error instanceof HcsError)) {
      log.error((error as Error).message);
      if (machine.console.tail()) {
        log.info(`Last console lines:\n${machine.console.tail()}`);
      }
      status = error instanceof ConsoleError ? EXIT.CONSOLE : EXIT.HCS;
    } else throw error;
  } finally {
    if (machine) {
      const force = () => machine!.system.terminate().catch(() => {});
      if (interrupts.force.signal.aborted) await force();
      interrupts.force.signal.addEventListener("abort", force, { once: true });
      log.debug(`stopping ${machine.id}`);
      await machine.dispose().catch((error) => {
        log.error(`Cannot stop ${machine!.id}: ${(error as Error).message}`);
        status ??= EXIT.HCS;
      });
    }
    consoleLog?.close();
  }
  if (interrupts.status !== undefined) return interrupts.status;
  return status ?? EXIT.INTERNAL;
}

async function command(
  machine: Machine,
  request: RunRequest,
  stopSignal: AbortSignal,
): Promise<number> {
  const interrupt = request.timeoutSeconds === undefined
    ? stopSignal
    : AbortSignal.any([
      stopSignal,
      AbortSignal.timeout(request.timeoutSeconds * 1000),
    ]);
  const stdout = Deno.stdout.writable.getWriter();
  let writeError: unknown;
  // Writes finish in order: the last one done means all are.
  let written: Promise<unknown> = Promise.resolve();
  try {
    const { status } = await machine.run(request.command, {
      output: (bytes) => {
        written = stdout.write(bytes).catch((error) => (writeError ??= error));
      },
      input: Deno.stdin.isTerminal() ? undefined : Deno.stdin.readable,
      signal: interrupt,
    });
    await written;
    if (writeError) throw writeError;
    if (interrupt.aborted && !stopSignal.aborted) {
      log.error(
        `The command ran longer than --timeout ${request.timeoutSeconds} s ` +
          "and was interrupted",
      );
      return EXIT.TIMEOUT;
    }
    return status;
  } finally {
    stdout.releaseLock();
  }
}

async function interactive(
  machine: Machine,
  stopSignal: AbortSignal,
  bootTimeoutSeconds: number,
): Promise<number> {
  const isTerminal = Deno.stdin.isTerminal();
  let size: { columns: number; rows: number } | undefined;
  try {
    size = isTerminal ? Deno.consoleSize() : undefined;
  } catch {
    // No console to measure: the guest keeps its default size.
  }
  const stdout = Deno.stdout.writable.getWriter();
  let written: Promise<unknown> = Promise.resolve();
  log.info(
    `vmrunner: connected to ${machine.id}'s console; leave with ${ESCAPE_HELP}.`,
  );
  try {
    await attachTerminal(machine.console, machine.shell, {
      input: Deno.stdin.readable,
      output: (bytes) => {
        written = stdout.write(bytes).catch(() => {});
      },
      size,
      setRaw: isTerminal ? (raw) => Deno.stdin.setRaw(raw) : undefined,
      signal: stopSignal,
    }, Date.now() + bootTimeoutSeconds * 1000);
    await written;
    // The guest's last line may not have ended; ours starts afresh.
    log.info(`\nvmrunner: left ${machine.id}'s console.`);
  } finally {
    stdout.releaseLock();
  }
  return 0;
}

async function list(request: ListRequest): Promise<number> {
  const systems = await ComputeSystem.enumerate(
    request.all ? {} : { Owners: [OWNER] },
  );
  const rows = [["ID", "STATE", "OWNER", "RUNTIME ID"]];
  for (const system of systems) {
    rows.push([system.id, system.state, system.owner, system.runtimeId ?? ""]);
  }
  const widths = rows[0].map((_, column) =>
    Math.max(...rows.map((row) => row[column].length))
  );
  const text = rows.map((row) =>
    row.map((cell, column) => cell.padEnd(widths[column])).join("  ").trimEnd()
  ).join("\n");
  await Deno.stdout.write(new TextEncoder().encode(text + "\n"));
  return 0;
}

async function kill(request: KillRequest): Promise<number> {
  const ids = request.all
    ? (await ComputeSystem.enumerate({ Owners: [OWNER] })).map((s) => s.id)
    : request.ids;
  let status = 0;
  for (const id of ids) {
    try {
      await using system = await ComputeSystem.open(id);
      await system.terminate();
      log.info(`killed ${id}`);
    } catch (error) {
      log.error(error instanceof Error ? error.message : String(error));
      status = EXIT.HCS;
    }
  }
  return status;
}
