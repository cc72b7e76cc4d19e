/**
 * One whole bench run: the boots (rows 1, 4, 5), the console blocks (rows
 * 2, 3), the host's description and the rows.
 *
 * @module
 */

import { type BootPair, measureBoots, ROOT } from "./boot_runs.ts";
import { type ConsoleBlock, measureConsole } from "./console_runs.ts";
import { type HostInfo, hostInfo, loadAverage } from "./host_info.ts";
import {
  buildRows,
  renderSection,
  type Row,
  type RunCounts,
} from "./report.ts";

/** How much to run. */
export interface BenchOptions extends RunCounts {
  /** Folder with vmlinuz, initrd and rootfs.vhdx; default `vm-image/`. */
  imageDir?: string;
  /** Progress notes. */
  log?: (message: string) => void;
}

/** Everything a run measured, and its report. */
export interface BenchResult {
  host: HostInfo;
  counts: RunCounts;
  boots: BootPair[];
  /** Boot runs that failed, one line each; their pairs are left out. */
  failures: string[];
  blocks: ConsoleBlock[];
  rows: Row[];
  elapsedMs: number;
  /** The 1-minute load average at the end of the run. */
  loadAfter: number;
  /** The Markdown section for BENCHMARKS.md. */
  section: string;
}

/** Runs the bench. */
export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const started = performance.now();
  const imageDir = options.imageDir ?? `${ROOT}vm-image`;
  const host = await hostInfo();
  const { pairs: boots, failures } = await measureBoots({
    imageDir,
    pairs: options.bootPairs,
    log: options.log,
  });
  const blocks = await measureConsole({
    imageDir,
    blocks: options.blocks,
    roundTrips: options.roundTrips,
    payloadBytes: options.payloadBytes,
    log: options.log,
  });
  const counts: RunCounts = {
    bootPairs: options.bootPairs,
    blocks: options.blocks,
    roundTrips: options.roundTrips,
    payloadBytes: options.payloadBytes,
  };
  const rows = buildRows(boots, blocks, options.payloadBytes);
  const elapsedMs = performance.now() - started;
  const loadAfter = loadAverage();
  return {
    host,
    counts,
    boots,
    failures,
    blocks,
    rows,
    elapsedMs,
    loadAfter,
    section: renderSection(host, counts, rows, elapsedMs, loadAfter, failures),
  };
}
