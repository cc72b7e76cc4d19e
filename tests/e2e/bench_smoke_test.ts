/**
 * The bench (`deno task bench`) with one run of everything: it is too slow
 * for the test suites, but its code must keep working. Three boots: one of
 * `vmrunner true`, one of the raw client, one VM for the console rows.
 */

import assert from "node:assert/strict";
import type { Summary } from "../../bench/stats.ts";
import { renderTable } from "../../bench/report.ts";
import { runBench } from "../../bench/run.ts";
import { IMAGE_DIR, vmProcessesFor } from "./helpers.ts";

Deno.test("the bench runs every row once and reports finite numbers", async () => {
  const result = await runBench({
    imageDir: IMAGE_DIR,
    bootPairs: 1,
    blocks: 1,
    roundTrips: 2,
    payloadBytes: 64 * 1024,
  });

  assert.equal(result.rows.length, 5);
  const finite = (summary: Summary, what: string) => {
    assert.equal(summary.count >= 1, true, `${what}: no values`);
    for (const key of ["median", "min", "max"] as const) {
      assert.ok(Number.isFinite(summary[key]), `${what}: ${key} is finite`);
    }
  };
  for (const row of result.rows) {
    finite(row.vmrunner, `${row.title} (vmrunner)`);
    finite(row.baseline, `${row.title} (baseline)`);
    finite(row.result, `${row.title} (result)`);
  }
  const table = renderTable(result.rows);
  for (const [index, row] of result.rows.entries()) {
    assert.ok(row.title.startsWith(`${index + 1}. `), row.title);
    assert.ok(table.includes(row.title), `the table has row ${index + 1}`);
  }
  assert.ok(result.section.includes(table));
  assert.ok(result.section.includes(result.host.deno));

  // The numbers are what they claim to be: real boots, real transfers.
  const [pair] = result.boots;
  assert.ok(pair.raw.wallMs > 1000, "the raw client booted a VM");
  assert.ok(pair.vmrunner.peakKiB > 0 && pair.raw.peakKiB > 0);
  assert.ok(pair.vmrunner.firstCallMs > 0 && pair.raw.firstCallMs > 0);
  const [block] = result.blocks;
  assert.ok(block.libraryBytesPerSecond > 0 && block.rawBytesPerSecond > 0);

  // Both sides of row 1 boot the same VM: only the names differ.
  const unnamed = (document: string) =>
    JSON.parse(document.replace(/\\\\\\\\.\\\\pipe\\\\[^"]+/, "PIPE"));
  assert.notEqual(pair.vmrunner.document, "");
  assert.deepEqual(
    unnamed(pair.raw.document),
    unnamed(pair.vmrunner.document),
  );

  assert.deepEqual(await vmProcessesFor("vmrbench"), [], "no VM left");
});
