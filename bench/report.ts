/**
 * The bench's rows (what vmrunner costs against its baseline, each with its
 * target), the table they make, and the section of BENCHMARKS.md it fills.
 *
 * @module
 */

import type { BootPair } from "./boot_runs.ts";
import type { ConsoleBlock } from "./console_runs.ts";
import type { HostInfo } from "./host_info.ts";
import { median, summarize, type Summary } from "./stats.ts";

/** One line of the table. */
export interface Row {
  /** What is measured. */
  title: string;
  /** vmrunner's measurements. */
  vmrunner: Summary;
  /** The baseline's measurements, in the same unit. */
  baseline: Summary;
  /** How vmrunner's series and the baseline's are shown. */
  unit: Unit;
  /**
   * The compared quantity, per interleaved pair (or block) of runs, so
   * that drift cancels within each: a ratio, ms added, or vmrunner's own
   * value where the target is absolute.
   */
  result: Summary;
  /** How the result is shown. */
  resultUnit: Unit;
  /** The target, as text. */
  target: string;
  /** Whether the median result meets the target. */
  met: boolean;
}

/** How values of a series are printed: scaled, rounded, with a suffix. */
export interface Unit {
  /** Multiplies the stored value (ms, bytes/s, KiB) for display. */
  scale: number;
  digits: number;
  suffix: string;
  /** Shows a sign, for differences. */
  signed?: boolean;
}

const seconds: Unit = { scale: 1 / 1000, digits: 2, suffix: " s" };
const millis: Unit = { scale: 1, digits: 2, suffix: " ms" };
const wholeMillis: Unit = { scale: 1, digits: 0, suffix: " ms" };
const addedMillis: Unit = { scale: 1, digits: 2, suffix: " ms", signed: true };
const ratio: Unit = { scale: 1, digits: 3, suffix: "×" };
const megabytesPerSecond: Unit = { scale: 1e-6, digits: 3, suffix: " MB/s" };
const megabytes: Unit = { scale: 1024 / 1e6, digits: 1, suffix: " MB" };

/** A value in `unit`, without the suffix. */
function number(value: number, unit: Unit): string {
  const text = Math.abs(value * unit.scale).toFixed(unit.digits);
  if (value < 0) return `−${text}`;
  return unit.signed ? `+${text}` : text;
}

/** Targets of issue 7. */
export const TARGETS = {
  bootRatio: 1.03,
  roundTripAddedMs: 2,
  throughputRatio: 0.95,
  startupMs: 80,
  peakMegabytes: 60,
} as const;

/** Turns the measurements into the five rows. */
export function buildRows(
  boots: readonly BootPair[],
  blocks: readonly ConsoleBlock[],
  payloadBytes: number,
): Row[] {
  const boot = summarize(
    boots.map((pair) => pair.vmrunner.wallMs / pair.raw.wallMs),
  );
  const added = summarize(
    blocks.map((block) =>
      median(block.libraryRoundTripMs) - median(block.rawRoundTripMs)
    ),
  );
  const throughput = summarize(
    blocks.map((block) =>
      block.libraryBytesPerSecond / block.rawBytesPerSecond
    ),
  );
  const startup = summarize(boots.map((pair) => pair.vmrunner.firstCallMs));
  const peak = summarize(boots.map((pair) => pair.vmrunner.peakKiB));
  const payload = payloadBytes % 2 ** 20 === 0
    ? `${payloadBytes / 2 ** 20} MiB`
    : `${payloadBytes} bytes`;
  return [
    {
      title: "1. Boot to output: `vmrunner true`, wall time",
      vmrunner: summarize(boots.map((pair) => pair.vmrunner.wallMs)),
      baseline: summarize(boots.map((pair) => pair.raw.wallMs)),
      unit: seconds,
      result: boot,
      resultUnit: ratio,
      target: `≤ ${TARGETS.bootRatio}×`,
      met: boot.median <= TARGETS.bootRatio,
    },
    {
      title: '2. Command round trip: `Machine.run(["true"])`',
      vmrunner: summarize(blocks.flatMap((block) => block.libraryRoundTripMs)),
      baseline: summarize(blocks.flatMap((block) => block.rawRoundTripMs)),
      unit: millis,
      result: added,
      resultUnit: addedMillis,
      target: `≤ +${TARGETS.roundTripAddedMs} ms`,
      met: added.median <= TARGETS.roundTripAddedMs,
    },
    {
      title: `3. Console throughput: \`cat\` of ${payload}`,
      vmrunner: summarize(blocks.map((block) => block.libraryBytesPerSecond)),
      baseline: summarize(blocks.map((block) => block.rawBytesPerSecond)),
      unit: megabytesPerSecond,
      result: throughput,
      resultUnit: ratio,
      target: `≥ ${TARGETS.throughputRatio}×`,
      met: throughput.median >= TARGETS.throughputRatio,
    },
    {
      title: "4. Start-up: process start to first HCS call",
      vmrunner: startup,
      baseline: summarize(boots.map((pair) => pair.raw.firstCallMs)),
      unit: wholeMillis,
      result: startup,
      resultUnit: wholeMillis,
      target: `≤ ${TARGETS.startupMs} ms`,
      met: startup.median <= TARGETS.startupMs,
    },
    {
      title: "5. Peak resident memory (VmHWM)",
      vmrunner: peak,
      baseline: summarize(boots.map((pair) => pair.raw.peakKiB)),
      unit: megabytes,
      result: peak,
      resultUnit: megabytes,
      target: `≤ ${TARGETS.peakMegabytes} MB`,
      met: peak.median * megabytes.scale <= TARGETS.peakMegabytes,
    },
  ];
}

/** "median (min–max)" of a summary, the unit given once. */
function cell(summary: Summary, unit: Unit): string {
  return `${number(summary.median, unit)}${unit.suffix} (${
    number(summary.min, unit)
  } to ${number(summary.max, unit)})`;
}

/** The rows as a Markdown table, columns padded so it reads as text too. */
export function renderTable(rows: readonly Row[]): string {
  const header = [
    "row",
    "vmrunner",
    "baseline",
    "result",
    "target",
    "met",
  ];
  const lines = rows.map((row) => [
    row.title,
    cell(row.vmrunner, row.unit),
    cell(row.baseline, row.unit),
    cell(row.result, row.resultUnit),
    row.target,
    row.met ? "met" : "not met",
  ]);
  const widths = header.map((_, column) =>
    Math.max(...[header, ...lines].map((line) => width(line[column])))
  );
  const format = (line: string[]) =>
    `| ${
      line.map((text, column) =>
        text + " ".repeat(widths[column] - width(text))
      ).join(" | ")
    } |`;
  const rule = `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`;
  return [format(header), rule, ...lines.map(format)].join("\n");
}

/** Display width: every character here takes one column. */
function width(text: string): number {
  return [...text].length;
}

/** What the bench ran, for the report's heading. */
export interface RunCounts {
  bootPairs: number;
  blocks: number;
  roundTrips: number;
  payloadBytes: number;
}

/** The generated section of BENCHMARKS.md. */
export function renderSection(
  host: HostInfo,
  counts: RunCounts,
  rows: readonly Row[],
  elapsedMs: number,
  loadAfter: number,
  failures: readonly string[] = [],
): string {
  const failed = failures.length === 0 ? [] : [
    `- Failed boot runs, left out with their pairs: ${failures.length}`,
    ...failures.map((failure) => `  - ${failure}`),
  ];
  return [
    `Run of ${host.date}, ${(elapsedMs / 60_000).toFixed(1)} min; load ` +
    `average ${host.loadAverage.toFixed(1)} at the start, ` +
    `${loadAfter.toFixed(1)} at the end (other VMs on the host).`,
    "",
    `- Machine: ${host.cpuModel}, ${host.cores} cores, ${
      host.memoryGiB.toFixed(1)
    } GiB memory, Linux ${host.kernel}`,
    `- Deno ${host.deno}; ${host.qemu}`,
    `- Rows 1, 4 and 5: ${counts.bootPairs} runs each of vmrunner and of ` +
    "the raw client, alternating. Rows 2 and 3: one VM, " +
    `${counts.blocks} library blocks alternating with ${counts.blocks} raw ` +
    `blocks, each with ${counts.roundTrips} round trips and one transfer.`,
    "- Cells: median (min to max). Rows 1–3 compare within each pair of " +
    "back-to-back runs (row 1) or of blocks (rows 2 and 3), so that drift " +
    "cancels; rows 4 and 5 have absolute targets, and their baseline is " +
    "the raw client's own figure. `met` judges the median result.",
    ...failed,
    "",
    renderTable(rows),
  ].join("\n");
}

/** Where the generated section starts and ends in BENCHMARKS.md. */
export const BEGIN_MARK =
  "<!-- bench:begin: written by `deno task bench`; edit outside -->";
export const END_MARK = "<!-- bench:end -->";

/**
 * Puts `section` between the markers of `document`, keeping everything
 * else; a document without markers gets a heading and the section.
 */
export function replaceSection(document: string, section: string): string {
  const begin = document.indexOf(BEGIN_MARK);
  const end = document.indexOf(END_MARK);
  const block = `${BEGIN_MARK}\n\n${section}\n\n${END_MARK}`;
  if (begin < 0 || end < begin) {
    return `# Benchmarks\n\n${block}\n`;
  }
  return document.slice(0, begin) + block +
    document.slice(end + END_MARK.length);
}
