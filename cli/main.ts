/**
 * What `vmrunner` does with a parsed command line.
 *
 * @module
 */

import { ZodError } from "zod/v3";
import { ConsoleError } from "../console/shell_session.ts";
import { attachTerminal, ESCAPE_HELP } from "../console/interactive.ts";
import { HcsError } from "../hcs/hcs_error.ts";
import { formatHresult, HRESULT } from "../hcs/hresult.ts";
import { vmcompute } from "../hcs/library.ts";
import { ImageError } from "../vm/image.ts";
import { Machine } from "../vm/machine.ts";
import { BatchingWriter } from "./batching_writer.ts";
import { EXIT } from "./exit_codes.ts";
import { Interrupted, Interrupts } from "./interrupts.ts";
import * as log from "./log.ts";
import { kill, list } from "./systems.ts";
import {
  parseArgs,
  type RunRequest,
  TIMEOUT_VARIABLES,
  type TimeoutSettings,
  timeoutsFromEnv,
  timeoutVariableFor,
  USAGE,
  UsageError,
} from "./options.ts";

/** Runs vmrunner with `args` and returns the exit status. */
export async function main(args: readonly string[]): Promise<number> {
  let request;
  let timeouts: TimeoutSettings;
  try {
    const env = readEnv([
      "VMRUNNER_USER",
      "VMRUNNER_PASSWORD",
      ...Object.keys(TIMEOUT_VARIABLES),
    ]);
    request = parseArgs(args, env);
    timeouts = timeoutsFromEnv(env);
  } catch (error) {
    if (error instanceof UsageError) {
      log.error(`${error.message}\n${USAGE}\nSee vmrunner --help for more.`);
      return EXIT.USAGE;
    }
    throw error;
  }
  if (request.kind === "print") return await print(request.text);
  try {
    // Without HCS nothing else matters, so its absence is said first.
    vmcompute();
    switch (request.kind) {
      case "list":
        return await print(await list(request, timeouts));
      case "kill":
        return await kill(request, timeouts);
      case "run":
        return await run(request, timeouts);
    }
  } catch (error) {
    return report(error);
  }
}

/** Writes text for the user to stdout; a closed stdout is no error. */
async function print(text: string): Promise<number> {
  try {
    const writer = Deno.stdout.writable.getWriter();
    await writer.write(new TextEncoder().encode(text));
    writer.releaseLock();
  } catch (error) {
    if (error instanceof Deno.errors.BrokenPipe) return 0;
    log.error(`Cannot write to stdout: ${(error as Error).message}`);
    return EXIT.INTERNAL;
  }
  return 0;
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
    log.error(
      error.hresult === HRESULT.WAIT_TIMEOUT
        ? `${error.message}\n  Or allow more time: ${
          timeoutVariableFor(error.operation)
        }=<seconds>`
        : error.message,
    );
    return EXIT.HCS;
  }
  if (error instanceof ConsoleError) {
    log.error(error.message);
    return EXIT.CONSOLE;
  }
  log.error(
    `Unexpected failure: ${
      error instanceof Error ? error.stack ?? error.message : String(error)
    }`,
  );
  return EXIT.INTERNAL;
}

async function run(
  request: RunRequest,
  timeouts: TimeoutSettings,
): Promise<number> {
  log.setVerbose(request.verbose);
  using interrupts = new Interrupts((signal, count) => {
    if (count === 1) log.warn(`${signal}: stopping the VM`);
    else if (count === 2) log.warn(`${signal} again: terminating the VM now`);
  });
  const stopSignal = interrupts.stop.signal;
  let consoleLog: Deno.FsFile | undefined;
  if (request.consoleLog) {
    try {
      consoleLog = await Deno.open(request.consoleLog, {
        write: true,
        create: true,
        truncate: true,
      });
    } catch (error) {
      throw new UsageError(
        `Cannot write the console log ${request.consoleLog}: ${
          (error as Error).message
        }. Choose a file in a folder that exists and is writable`,
      );
    }
  }
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
      pipeServer: request.pipeServer,
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
      timeouts: timeouts.hcs,
      consoleTimeoutMs: timeouts.consoleMs,
    });
    status = request.interactive
      ? await interactive(machine, stopSignal, request.bootTimeoutSeconds)
      : await command(machine, request, stopSignal);
  } catch (error) {
    if (stopSignal.aborted) status = interrupts.status;
    else if (machine && !(error instanceof HcsError)) {
      log.error((error as Error).message);
      // A ConsoleError's message carries the console's last lines already.
      if (!(error instanceof ConsoleError) && machine.console.tail()) {
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
  // --timeout is the command's: the boot has --boot-timeout.
  await machine.ready(stopSignal);
  // A reader that went away (`vmrunner yes | head`) ends the command too.
  const outputGone = new AbortController();
  const interrupt = AbortSignal.any([
    stopSignal,
    outputGone.signal,
    ...(request.timeoutSeconds === undefined
      ? []
      : [AbortSignal.timeout(request.timeoutSeconds * 1000)]),
  ]);
  const stdout = Deno.stdout.writable.getWriter();
  const output = new BatchingWriter(stdout, () => outputGone.abort());
  try {
    const { status } = await machine.run(request.command, {
      output: (bytes) => output.write(bytes),
      input: Deno.stdin.isTerminal() ? undefined : Deno.stdin.readable,
      signal: interrupt,
    });
    await output.drained();
    const writeError = output.error;
    if (writeError instanceof Deno.errors.BrokenPipe) {
      // As a program killed by SIGPIPE would, quietly.
      return EXIT.BROKEN_PIPE;
    }
    if (writeError) {
      log.error(
        `Cannot write the command's output: ${(writeError as Error).message}`,
      );
      return EXIT.INTERNAL;
    }
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
  const output = new BatchingWriter(stdout);
  log.info(
    `vmrunner: connected to ${machine.id}'s console; leave with ${ESCAPE_HELP}.`,
  );
  try {
    await attachTerminal(machine.console, machine.shell, {
      input: Deno.stdin.readable,
      output: (bytes) => output.write(bytes),
      size,
      setRaw: isTerminal ? (raw) => Deno.stdin.setRaw(raw) : undefined,
      signal: stopSignal,
    }, Date.now() + bootTimeoutSeconds * 1000);
    await output.drained();
    // The guest's last line may not have ended; ours starts afresh.
    log.info(`\nvmrunner: left ${machine.id}'s console.`);
  } finally {
    stdout.releaseLock();
  }
  // A console that closed means the VM ended: say how, and fail unless the
  // guest powered itself off.
  const exit = machine.console.isEnded
    ? await machine.system.waitForExit({ timeoutMs: 2000 }).catch(() =>
      undefined
    )
    : undefined;
  if (machine.console.isEnded && (!exit || exit.status !== 0)) {
    log.error(
      exit
        ? `The VM ${machine.id} ended (status ${
          formatHresult(exit.status)
        }): it crashed, or something terminated it`
        : `The console of ${machine.id} closed, and the VM did not say why`,
    );
    return EXIT.HCS;
  }
  return 0;
}
