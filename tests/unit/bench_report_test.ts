/**
 * The bench's arithmetic and its report, on made-up measurements: what
 * the one-iteration smoke run cannot show (even counts, ratios of several
 * pairs, BENCHMARKS.md rewritten between its markers).
 */

import assert from "node:assert/strict";
import type { BootPair, ProcessRun } from "../../bench/boot_runs.ts";
import type { ConsoleBlock } from "../../bench/console_runs.ts";
import {
  BEGIN_MARK,
  buildRows,
  END_MARK,
  renderSection,
  replaceSection,
} from "../../bench/report.ts";
import { summarize } from "../../bench/stats.ts";

function run(wallMs: number, firstCallMs: number, peakKiB: number) {
  const process: ProcessRun = {
    wallMs,
    firstCallMs,
    peakKiB,
    stdout: "",
    document: "",
  };
  return process;
}

const boots: BootPair[] = [
  { vmrunner: run(8000, 40, 60_000), raw: run(8000, 20, 48_000) },
  { vmrunner: run(9900, 30, 62_000), raw: run(9000, 19, 48_000) },
  { vmrunner: run(7000, 50, 61_000), raw: run(7000, 21, 48_000) },
];
const blocks: ConsoleBlock[] = [
  {
    libraryRoundTripMs: [5, 4, 6],
    rawRoundTripMs: [1, 1, 1],
    libraryBytesPerSecond: 300_000,
    rawBytesPerSecond: 400_000,
  },
  {
    libraryRoundTripMs: [3, 3],
    rawRoundTripMs: [2, 0],
    libraryBytesPerSecond: 400_000,
    rawBytesPerSecond: 400_000,
  },
];

Deno.test("summarize() gives median, min and max; an even count's median is a mean", () => {
  assert.deepEqual(summarize([3, 1, 2, 10]), {
    median: 2.5,
    min: 1,
    max: 10,
    count: 4,
  });
  assert.deepEqual(summarize([7]), { median: 7, min: 7, max: 7, count: 1 });
  assert.ok(Number.isNaN(summarize([]).median));
});

Deno.test("buildRows() compares each pair and block with its own baseline", () => {
  const [boot, roundTrip, throughput, startup, memory] = buildRows(
    boots,
    blocks,
    2 * 2 ** 20,
  );
  // Row 1: per-pair ratios 1, 1.1, 1: the median is 1, the max 1.1.
  assert.deepEqual(boot.result, { median: 1, min: 1, max: 1.1, count: 3 });
  assert.equal(boot.met, true);
  // Row 2: per block, library median minus raw median: 5 - 1, 3 - 1.
  assert.deepEqual(roundTrip.result, { median: 3, min: 2, max: 4, count: 2 });
  assert.equal(roundTrip.met, false);
  // Row 3: 0.75 and 1.
  assert.equal(throughput.result.median, 0.875);
  assert.equal(throughput.met, false);
  assert.match(throughput.title, /2 MiB/);
  // Rows 4 and 5 are absolute: vmrunner's own figures.
  assert.equal(startup.result.median, 40);
  assert.equal(startup.baseline.median, 20);
  assert.equal(startup.met, true);
  assert.equal(memory.result.median, 61_000);
  assert.equal(memory.met, false, "61,000 KiB is 62.5 MB, over 60");
});

Deno.test("renderSection() names the date and the machine; replaceSection() keeps the rest", () => {
  const section = renderSection(
    {
      date: "2026-12-04T22:17:33Z",
      cpuModel: "Test CPU",
      cores: 2,
      memoryGiB: 23.5,
      deno: "2.9.6",
      qemu: "QEMU 7.2",
      kernel: "6.1.0",
      loadAverage: 1,
    },
    { bootPairs: 3, blocks: 2, roundTrips: 3, payloadBytes: 2 ** 21 },
    buildRows(boots, blocks, 2 ** 21),
    60_000,
    1.5,
  );
  assert.match(section, /^Run of 2026-12-04T22:17:33Z, 1\.0 min/);
  assert.match(section, /Machine: Test CPU, 2 cores, 23\.5 GiB/);
  assert.match(
    section,
    /\| 1\. Boot to output.*\| 1\.000× \(1\.000 to 1\.100\)/,
  );
  assert.match(section, /\| 5\. Peak resident memory.*62\.5 MB.*not met/);

  const before = `# Benchmarks\n\nProse.\n\n${BEGIN_MARK}\n\nold table\n\n` +
    `${END_MARK}\n\n## Before and after\n\nMore prose.\n`;
  const after = replaceSection(before, section);
  assert.ok(after.startsWith("# Benchmarks\n\nProse.\n\n"));
  assert.ok(
    after.endsWith(`${END_MARK}\n\n## Before and after\n\nMore prose.\n`),
  );
  assert.ok(after.includes(section));
  assert.ok(!after.includes("old table"));
  // Without markers the document is started afresh, markers included.
  assert.equal(
    replaceSection("", "x"),
    `# Benchmarks\n\n${BEGIN_MARK}\n\nx\n\n${END_MARK}\n`,
  );
});
