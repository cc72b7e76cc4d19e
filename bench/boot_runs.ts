/**
 * Rows 1, 4 and 5: `vmrunner true` and the raw client, each as a process of
 * its own started the same way, interleaved so that load from other VMs on
 * the machine falls on both alike.
 *
 * @module
 */

import { summarizeTrace } from "../tests/hcs-sim/trace.ts";
import {
  TEST_BED_PERMISSIONS,
  TEST_BED_RUN_FLAGS,
} from "../tools/deno_flags.ts";

export const ROOT = new URL("..", import.meta.url).pathname;
const SIM_BUILD = `${ROOT}tests/hcs-sim/build`;

/** What one process run took. */
export interface ProcessRun {
  /** From just before the spawn to the exit, in ms. */
  wallMs: number;
  /** From just before the spawn to the start of its first HCS call, in ms. */
  firstCallMs: number;
  /** The highest VmHWM seen while it ran, in kB (KiB, as /proc says). */
  peakKiB: number;
  /** What it printed. */
  stdout: string;
  /** The document it passed to HcsCreateComputeSystem. */
  document: string;
}

/** One vmrunner run and one raw run, made back to back. */
export interface BootPair {
  vmrunner: ProcessRun;
  raw: ProcessRun;
}

/** Options of {@linkcode measureBoots}. */
export interface BootOptions {
  /** Folder with vmlinuz, initrd and rootfs.vhdx (absolute). */
  imageDir: string;
  /** Pairs of runs. */
  pairs: number;
  /** Progress notes. */
  log?: (message: string) => void;
}

/** What {@linkcode measureBoots} measured, and the runs that failed. */
export interface BootRuns {
  pairs: BootPair[];
  /** One line per failed run: which side, and why. */
  failures: string[];
}

/**
 * Runs `vmrunner --read-only true` and the raw client `pairs` times each,
 * alternating which goes first, so that neither always meets a warmer
 * cache or a quieter machine. A pair in which either run fails is left out
 * and its failure reported: one bad boot should not void the rest.
 */
export async function measureBoots(options: BootOptions): Promise<BootRuns> {
  const pairs: BootPair[] = [];
  const failures: string[] = [];
  const attempt = async (side: string, args: string[]) => {
    try {
      return await runProcess(args);
    } catch (error) {
      failures.push(`${side}: ${(error as Error).message.split("\n")[1]}`);
      options.log?.(`${side} failed: ${(error as Error).message}`);
      return undefined;
    }
  };
  for (let i = 0; i < options.pairs; i++) {
    const runVmrunner = () =>
      attempt("vmrunner", [
        "run",
        ...TEST_BED_RUN_FLAGS,
        `${ROOT}main.ts`,
        "--read-only",
        "true",
      ]);
    const runRaw = () =>
      attempt("raw client", [
        "run",
        ...TEST_BED_PERMISSIONS,
        `${ROOT}bench/raw_client.ts`,
        options.imageDir,
        `vmrbench-raw-${crypto.randomUUID().slice(0, 8)}`,
      ]);
    let vmrunner: ProcessRun | undefined;
    let raw: ProcessRun | undefined;
    if (i % 2 === 0) {
      vmrunner = await runVmrunner();
      raw = await runRaw();
    } else {
      raw = await runRaw();
      vmrunner = await runVmrunner();
    }
    if (vmrunner && vmrunner.stdout !== "") {
      failures.push(`vmrunner: printed ${JSON.stringify(vmrunner.stdout)}`);
      vmrunner = undefined;
    }
    if (!vmrunner || !raw) continue;
    pairs.push({ vmrunner, raw });
    options.log?.(
      `boot ${i + 1}/${options.pairs}: vmrunner ${
        (vmrunner.wallMs / 1000).toFixed(2)
      } s, raw ${(raw.wallMs / 1000).toFixed(2)} s`,
    );
  }
  if (pairs.length === 0) {
    throw new Error(`Every boot pair failed:\n${failures.join("\n")}`);
  }
  return { pairs, failures };
}

/**
 * Runs `deno ARGS` from the repository root with the simulator on the
 * loader's path, as `deno task start` does, and measures it.
 */
export async function runProcess(args: string[]): Promise<ProcessRun> {
  const trace = await Deno.makeTempFile({ prefix: "vmrbench-trace-" });
  try {
    const spawnedAt = Date.now();
    const started = performance.now();
    const child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      env: { LD_LIBRARY_PATH: SIM_BUILD, HCS_SIM_TRACE: trace, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output();
    const peak = watchPeak(child.pid, output);
    const { code, stdout, stderr } = await output;
    const wallMs = performance.now() - started;
    const peakKiB = await peak;
    if (code !== 0) {
      throw new Error(
        `deno ${args.join(" ")} exited with ${code}:\n` +
          new TextDecoder().decode(stderr),
      );
    }
    const { calls } = await summarizeTrace(trace);
    if (calls.length === 0) throw new Error("The trace shows no HCS call");
    const firstCall = Math.min(...calls.map((call) => call.t));
    const create = calls.find((call) => call.call === "HcsCreateComputeSystem");
    return {
      wallMs,
      firstCallMs: firstCall - spawnedAt,
      peakKiB,
      stdout: new TextDecoder().decode(stdout),
      document: String(create?.args.configuration ?? ""),
    };
  } finally {
    await Deno.remove(trace).catch(() => {});
  }
}

/** Polling interval of the VmHWM sampler. */
const SAMPLE_MS = 20;

/**
 * The largest VmHWM of process `pid` until `exited` settles. VmHWM is the
 * kernel's own high-water mark, so sampling misses only growth in the last
 * interval before the exit, when nothing is allocated any more.
 */
async function watchPeak(pid: number, exited: Promise<unknown>) {
  let done = false;
  exited.finally(() => (done = true)).catch(() => {});
  let peak = 0;
  while (!done) {
    try {
      const status = await Deno.readTextFile(`/proc/${pid}/status`);
      const hwm = status.match(/^VmHWM:\s+(\d+) kB$/m);
      if (hwm) peak = Math.max(peak, Number(hwm[1]));
    } catch {
      break; // gone
    }
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
  }
  return peak;
}
