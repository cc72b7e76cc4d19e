/**
 * Running vmrunner under Wine as a Windows user would, from tests that run
 * on Linux: the Windows build of Deno (or a compiled vmrunner.exe) with
 * exactly the shipped permissions, the test bed's vmcompute.dll found by
 * name through WINEPATH, and the simulator's trace of every HCS call.
 *
 * tests/wine/run.ts runs these files after the tests inside Wine and names
 * the Wine cache in VMRUNNER_WINE_CACHE; run directly, the helpers prepare
 * Wine themselves (tests/wine/setup.sh, a second once cached).
 *
 * @module
 */

import { summarizeTrace, type TraceSummary } from "../../hcs-sim/trace.ts";
import {
  VMRUNNER_PERMISSIONS,
  VMRUNNER_V8_FLAGS,
} from "../../../tools/deno_flags.ts";
import { REPO, SIM_BUILD_DIR, windowsPath } from "../../wine/paths.ts";

export { windowsPath };

/** The repository, without a trailing slash. */
export const ROOT = REPO;
/** The image every run boots, read-only so that runs may overlap. */
export const IMAGE_DIR = `${ROOT}/vm-image`;

/** The Wine cache: deno-win, wine, wineserver and ctrl-event.exe. */
export const WINE_CACHE = Deno.env.get("VMRUNNER_WINE_CACHE") ??
  await setUpWine();

async function setUpWine(): Promise<string> {
  const cache = `${ROOT}/.cache/wine`;
  const setup = await new Deno.Command("bash", {
    args: [`${ROOT}/tests/wine/setup.sh`, cache],
    env: { DENO_VERSION: Deno.version.deno },
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (!setup.success) {
    throw new Error(`tests/wine/setup.sh failed (exit ${setup.code})`);
  }
  return cache;
}

/** Runs Windows programs: `wine program.exe args...`. */
export const WINE = `${WINE_CACHE}/wine`;
/** The Windows build of Deno under Wine. */
export const DENO_WIN = `${WINE_CACHE}/deno-win`;
/** Sends Ctrl+C or Ctrl+Break to a Windows process (tests/wine/ctrl_event.c). */
export const CTRL_EVENT = `${WINE_CACHE}/ctrl-event.exe`;
/** The Windows deno.exe that DENO_WIN runs. */
export const DENO_EXE = `${WINE_CACHE}/deno-${Deno.version.deno}/deno.exe`;

/** What a vmrunner process did. */
export interface RunResult {
  /** The exit status, as Linux saw Wine's process end. */
  code: number;
  stdout: Uint8Array;
  stderr: string;
  /** The simulator's trace of every HCS call the process made. */
  trace: TraceSummary;
  /** The Windows process id, from the trace (undefined if it made no call). */
  windowsPid: number | undefined;
  /** Whether the run was killed for taking longer than `timeoutMs`. */
  timedOut: boolean;
}

/** Options of {@linkcode vmrunner}. */
export interface VmrunnerOptions {
  /** Bytes for stdin; stdin is empty (/dev/null) when absent. */
  stdin?: Uint8Array;
  /** Extra environment, for Wine's side too. */
  env?: Record<string, string>;
  /** Leave the simulator's folder off the DLL search path. */
  noDllPath?: boolean;
  /** The working directory (default: the repository). */
  cwd?: string;
  /**
   * Run this Windows program (a Linux path) instead of the Windows deno
   * on main.ts: a compiled vmrunner.exe, or a deno.exe elsewhere.
   */
  exe?: { path: string; prefixArgs?: string[] };
  /** Kill the run after this long; default 300 s. */
  timeoutMs?: number;
  /** Called with all stdout so far, each time more arrives. */
  onStdout?: (soFar: string, run: Running) => void;
  /** Called with all stderr so far, each time more arrives. */
  onStderr?: (soFar: string, run: Running) => void;
}

/** A vmrunner process while it runs. */
export interface Running {
  child: Deno.ChildProcess;
  /** The simulator's trace file, which the process is writing. */
  trace: string;
}

/**
 * The arguments that run main.ts with the Windows deno, as the shipped
 * .exe runs: the same permissions and V8 flags.
 */
export function denoRunArgs(): string[] {
  return [
    "run",
    ...VMRUNNER_V8_FLAGS,
    ...VMRUNNER_PERMISSIONS,
    windowsPath(`${ROOT}/main.ts`),
  ];
}

/** Runs vmrunner under Wine with `args` and collects what it did. */
export async function vmrunner(
  args: string[],
  options: VmrunnerOptions = {},
): Promise<RunResult> {
  const trace = await Deno.makeTempFile({ prefix: "vmrunner-wine-trace-" });
  const { command, commandArgs } = options.exe
    ? {
      command: WINE,
      commandArgs: [
        windowsPath(options.exe.path),
        ...(options.exe.prefixArgs ?? []),
      ],
    }
    : { command: DENO_WIN, commandArgs: denoRunArgs() };
  try {
    const child = new Deno.Command(command, {
      args: [...commandArgs, ...args],
      cwd: options.cwd ?? ROOT,
      env: {
        WINEDEBUG: "-all",
        NO_COLOR: "1",
        // The Windows deno's cache, as tests/wine/run.ts sets it.
        DENO_DIR: windowsPath(`${WINE_CACHE}/deno-dir`),
        HCS_SIM_TRACE: windowsPath(trace),
        ...(options.noDllPath ? {} : { WINEPATH: windowsPath(SIM_BUILD_DIR) }),
        ...options.env,
      },
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs ?? 300_000);
    const writing = (async () => {
      if (!options.stdin) return;
      const writer = child.stdin.getWriter();
      await writer.write(options.stdin).catch(() => {});
      await writer.close().catch(() => {});
    })();
    const running = { child, trace };
    const collect = async (
      stream: ReadableStream<Uint8Array>,
      onMore?: (soFar: string, run: Running) => void,
    ) => {
      const chunks: Uint8Array<ArrayBuffer>[] = [];
      let soFar = "";
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        chunks.push(chunk as Uint8Array<ArrayBuffer>);
        soFar += decoder.decode(chunk, { stream: true });
        onMore?.(soFar, running);
      }
      return new Uint8Array(await new Blob(chunks).arrayBuffer());
    };
    const [{ code }, , stdout, stderr] = await Promise.all([
      child.status,
      writing,
      collect(child.stdout, options.onStdout),
      collect(child.stderr, options.onStderr),
    ]);
    clearTimeout(timer);
    const summary = await summarizeTrace(trace);
    return {
      code,
      stdout,
      stderr: new TextDecoder().decode(stderr),
      trace: summary,
      windowsPid: summary.calls[0]?.pid,
      timedOut,
    };
  } finally {
    await Deno.remove(trace);
  }
}

/** The Windows pid of the process that made the calls traced in `path`. */
export async function tracedPid(path: string): Promise<number | undefined> {
  try {
    const first = (await Deno.readTextFile(path)).split("\n")[0];
    return first ? JSON.parse(first).pid : undefined;
  } catch {
    return undefined;
  }
}

/** Sends CTRL_C_EVENT or CTRL_BREAK_EVENT to a Windows process. */
export async function sendCtrlEvent(
  windowsPid: number,
  event: "c" | "break",
): Promise<void> {
  const { code, stderr } = await new Deno.Command(WINE, {
    args: [windowsPath(CTRL_EVENT), String(windowsPid), event],
    env: { WINEDEBUG: "-all" },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `ctrl-event.exe ${windowsPid} ${event} failed (exit ${code}): ${
        new TextDecoder().decode(stderr)
      }`,
    );
  }
}

/** Decodes output as UTF-8. */
export function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** The simulator's QEMU or supervisor processes still running for `id`. */
export async function vmProcessesFor(id: string): Promise<string[]> {
  const { stdout } = await new Deno.Command("ps", {
    args: ["-eo", "pid,args"],
    stdout: "piped",
  }).output();
  return text(stdout).split("\n").filter((line) =>
    line.includes(`hcs-sim:${id} `) || line.includes(`--id ${id} `)
  );
}

/** Waits until no process of the VM `id` is left, up to `ms`. */
export async function vmGone(id: string, ms = 15_000): Promise<string[]> {
  const deadline = Date.now() + ms;
  let left = await vmProcessesFor(id);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    left = await vmProcessesFor(id);
  }
  return left;
}
