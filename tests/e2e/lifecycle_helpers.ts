/**
 * Helpers for the lifecycle tests: vmrunner runs that the test watches
 * while they go (to signal them at a given phase, or to list and kill them
 * from another process), and the check that a run left nothing behind.
 *
 * Every run uses the tests' private simulator registry, `STATE_DIR`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { summarizeTrace } from "../hcs-sim/trace.ts";
import {
  IMAGE_DIR,
  ROOT,
  type RunResult,
  STATE_DIR,
  vmProcessesFor,
} from "./helpers.ts";
import { TEST_BED_RUN_FLAGS } from "../../tools/deno_flags.ts";

export { STATE_DIR };

/** The image, shared read-only, so that runs may overlap. */
export const SHARED = ["--read-only", "--image-dir", IMAGE_DIR];

/** A guest command that says it runs, then runs until stopped. */
export const LONG_COMMAND = ["sh", "-c", "echo started; sleep 600"];

/** Options of {@linkcode start}. */
export interface StartOptions {
  /** Extra environment (HCS_SIM switches, VMRUNNER_TIMEOUT_*). */
  env?: Record<string, string>;
  /** Keep stdin open as a pipe, for -i; else stdin is /dev/null. */
  stdin?: boolean;
  /** A command that runs deno, such as setpriv with its options. */
  prefix?: string[];
}

/** A vmrunner process the test watches as it runs. */
export interface Running {
  child: Deno.ChildProcess;
  /** Its stdin writer, with `stdin: true`. */
  stdin?: WritableStreamDefaultWriter<Uint8Array>;
  /** Everything it printed so far. */
  stdout(): string;
  stderr(): string;
  /**
   * Resolves once `pattern` shows in stdout or stderr; fails if vmrunner
   * ends first, or after 120 s.
   */
  waitFor(where: "stdout" | "stderr", pattern: RegExp): Promise<void>;
  /**
   * Waits for the end and tells what the run did. A run that has not ended
   * after 150 s is killed and fails the test, rather than hanging it.
   */
  result(): Promise<RunResult>;
}

/** Starts vmrunner with `args`; `result()` collects what it did. */
export function start(args: string[], options: StartOptions = {}): Running {
  const trace = Deno.makeTempFileSync({ prefix: "vmrunner-trace-" });
  const argv = [
    ...options.prefix ?? [],
    "deno",
    "run",
    ...TEST_BED_RUN_FLAGS,
    `${ROOT}main.ts`,
    ...args,
  ];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: ROOT,
    env: {
      HCS_SIM_TRACE: trace,
      HCS_SIM_STATE_DIR: STATE_DIR,
      NO_COLOR: "1",
      ...options.env,
    },
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const text = { stdout: "", stderr: "" };
  const waiters = new Set<() => void>();
  const pump = async (where: "stdout" | "stderr") => {
    const decoder = new TextDecoder();
    for await (const chunk of child[where]) {
      text[where] += decoder.decode(chunk, { stream: true });
      for (const wake of [...waiters]) wake();
    }
  };
  const pumping = Promise.all([pump("stdout"), pump("stderr")]);
  const status = child.status;
  return {
    child,
    stdin: options.stdin ? child.stdin.getWriter() : undefined,
    stdout: () => text.stdout,
    stderr: () => text.stderr,
    waitFor(where, pattern) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `${pattern} never showed on ${where}:\n${text[where]}` +
                `\n(stderr: ${text.stderr})`,
            ),
          );
        }, 120_000);
        const check = () => {
          if (!pattern.test(text[where])) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        waiters.add(check);
        check();
        pumping.then(() => {
          if (!waiters.has(check)) return;
          waiters.delete(check);
          clearTimeout(timer);
          reject(
            new Error(
              `vmrunner ended before ${pattern} showed on ${where}:\n` +
                `stdout: ${text.stdout}\nstderr: ${text.stderr}`,
            ),
          );
        });
      });
    },
    async result() {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const limit = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill("SIGKILL");
          reject(new Error(`vmrunner ${args.join(" ")} hung:\n${text.stderr}`));
        }, 150_000);
      });
      try {
        await Promise.race([Promise.all([status, pumping]), limit]);
      } finally {
        clearTimeout(timer);
      }
      const { code } = await status;
      try {
        return {
          code,
          stdout: new TextEncoder().encode(text.stdout),
          stderr: text.stderr,
          trace: await summarizeTrace(trace),
        };
      } finally {
        await Deno.remove(trace);
      }
    },
  };
}

/** Runs vmrunner to its end. */
export function run(
  args: string[],
  options: StartOptions = {},
): Promise<RunResult> {
  return start(args, options).result();
}

/** A fresh id for one run, so that runs never meet by accident. */
export function testId(label: string): string {
  return `lc-${label}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Waits up to `ms` for `check` to hold. */
export async function eventually(
  check: () => Promise<boolean>,
  ms = 10_000,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return await check();
}

/** Whether the simulator's registry still holds `id`. */
export async function registered(id: string): Promise<boolean> {
  try {
    await Deno.stat(`${STATE_DIR}/${id}.json`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Asserts that a finished run left nothing: every handle it opened closed,
 * every callback unregistered, every result string freed (the trace), and
 * no supervisor, QEMU or registry entry for `id`. The supervisor goes on
 * its own once the last handle has closed, so it is given a moment.
 */
export async function assertNothingLeft(
  result: RunResult,
  id: string,
): Promise<void> {
  assert.deepEqual(result.trace.leaks, [], `${id}: nothing left open`);
  assert.equal(result.trace.badFrees, 0, `${id}: only our strings freed`);
  await assertVmGone(id);
}

/** Asserts that no supervisor, QEMU or registry entry is left for `id`. */
export async function assertVmGone(id: string): Promise<void> {
  const gone = await eventually(async () =>
    (await vmProcessesFor(id)).length === 0 && !await registered(id)
  );
  assert.ok(
    gone,
    `${id} left behind: ${(await vmProcessesFor(id)).join("\n")}` +
      (await registered(id) ? " (and its registry entry)" : ""),
  );
}

/** The HCS calls a run made, by name. */
export function calls(result: RunResult, name: string) {
  return result.trace.calls.filter((call) => call.call === name);
}

/** A writable copy of the root disk, for runs that must not be read-only. */
export async function diskCopy(): Promise<string> {
  const copy = await Deno.makeTempFile({
    prefix: "vmrunner-rootfs-",
    suffix: ".vhdx",
  });
  await Deno.copyFile(`${IMAGE_DIR}/rootfs.vhdx`, copy);
  return copy;
}
