/**
 * The bench (`deno task bench`) with one run of everything: it is too slow
 * for the test suites, but its code must keep working. Three boots: one of
 * `vmrunner true`, one of the raw client, one VM for the console rows.
 *
 * It runs as `deno task bench` does, as a process of its own with all
 * permissions: sampling another process's /proc/<pid>/status needs them.
 */

import assert from "node:assert/strict";
import type { BenchResult } from "../../bench/run.ts";
import { ROOT, vmProcessesFor } from "./helpers.ts";

Deno.test("the bench runs every row once and reports finite numbers", async () => {
  const json = await Deno.makeTempFile({
    prefix: "vmrbench-",
    suffix: ".json",
  });
  try {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${ROOT}bench/main.ts`,
        "--pairs",
        "1",
        "--blocks",
        // Two: the second block reconnects the library to the running VM.
        "2",
        "--round-trips",
        "2",
        "--payload",
        String(64 * 1024),
        "--no-write",
        "--json",
        json,
      ],
      cwd: ROOT,
      env: { LD_LIBRARY_PATH: `${ROOT}tests/hcs-sim/build` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const printed = new TextDecoder().decode(stdout);
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const result: BenchResult = JSON.parse(await Deno.readTextFile(json));

    // Every row, each with a finite median, min and max on every side
    // (JSON turns NaN and Infinity into null).
    assert.equal(result.rows.length, 5);
    for (const [index, row] of result.rows.entries()) {
      assert.ok(row.title.startsWith(`${index + 1}. `), row.title);
      for (const side of ["vmrunner", "baseline", "result"] as const) {
        const summary = row[side];
        assert.ok(summary.count >= 1, `${row.title}: ${side} has values`);
        for (const key of ["median", "min", "max"] as const) {
          assert.ok(
            Number.isFinite(summary[key]),
            `${row.title}: ${side} ${key} is ${summary[key]}`,
          );
        }
      }
      assert.equal(typeof row.met, "boolean");
      assert.ok(
        printed.includes(row.title),
        `the table shows row ${index + 1}`,
      );
    }
    assert.ok(printed.includes(`Deno ${result.host.deno}`));
    assert.ok(printed.includes(result.host.date), "the run's date");
    assert.ok(printed.includes(result.host.cpuModel), "the machine");

    // The numbers are what they claim to be: real boots, real transfers.
    const [pair] = result.boots;
    assert.ok(pair.raw.wallMs > 1000, "the raw client booted a VM");
    assert.ok(pair.vmrunner.peakKiB > 0, "vmrunner's memory was sampled");
    assert.ok(pair.raw.peakKiB > 0, "the raw client's memory was sampled");
    assert.equal(
      result.rows[0].result.median,
      pair.vmrunner.wallMs / pair.raw.wallMs,
      "row 1 is vmrunner's time over the raw client's",
    );
    assert.equal(result.blocks.length, 2);
    for (const block of result.blocks) {
      assert.equal(block.libraryRoundTripMs.length, 2);
      assert.ok(block.rawBytesPerSecond > 0 && block.libraryBytesPerSecond > 0);
    }

    // Both sides of row 1 boot the same VM: only the pipe names differ.
    const unnamed = (document: string) =>
      JSON.parse(document.replace(/\\\\\\\\.\\\\pipe\\\\[^"]+/, "PIPE"));
    assert.notEqual(pair.vmrunner.document, "");
    assert.deepEqual(
      unnamed(pair.raw.document),
      unnamed(pair.vmrunner.document),
    );
    // Only this checkout's VMs: another checkout's bench may be running.
    const left = (await vmProcessesFor("vmrbench")).filter((line) =>
      line.includes(ROOT)
    );
    assert.deepEqual(left, [], "no VM left");
  } finally {
    await Deno.remove(json);
  }
});
