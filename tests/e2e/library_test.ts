/**
 * vmrunner as a library (mod.ts): one VM, many commands, and nothing left
 * behind, by the simulator's own counters.
 */

import assert from "node:assert/strict";
import { Machine } from "../../mod.ts";
import { counters } from "../hcs-sim/helpers.ts";
import { IMAGE_DIR } from "./helpers.ts";

Deno.test("Machine runs 20 commands on one VM, then leaves nothing behind", async () => {
  const before = counters();
  const decoder = new TextDecoder();
  {
    await using vm = await Machine.boot({
      imageDir: IMAGE_DIR,
      readOnly: true,
    });
    for (let i = 0; i < 20; i++) {
      const { status, output } = await vm.run([
        "sh",
        "-c",
        `echo "run $1"; exit $(($1 % 4))`,
        "-",
        String(i),
      ]);
      assert.equal(decoder.decode(output), `run ${i}\n`);
      assert.equal(status, i % 4);
    }
    // A string is a shell command line, run as is.
    const piped = await vm.run("echo one two | wc -w");
    assert.equal(decoder.decode(piped.output).trim(), "2");
    // A multi-line script runs once, whole (os-autoinst #1244).
    const script = await vm.run("printf 'a\\n'\nprintf 'b\\n'\nexit 4");
    assert.equal(decoder.decode(script.output), "a\nb\n");
    assert.equal(script.status, 4);
    // UTF-8 on stderr arrives, merged, without breaking anything
    // (nix-vm-test #87).
    const stderr = await vm.run([
      "sh",
      "-c",
      "echo 'Created foo → bar.' >&2 && echo foo",
    ]);
    assert.equal(decoder.decode(stderr.output), "Created foo → bar.\nfoo\n");
    // Streaming output and input.
    const chunks: string[] = [];
    const upper = await vm.run(["tr", "a-z", "A-Z"], {
      input: ReadableStream.from([new TextEncoder().encode("stream me\n")]),
      output: (bytes) => chunks.push(decoder.decode(bytes)),
    });
    assert.equal(upper.status, 0);
    assert.equal(chunks.join(""), "STREAM ME\n");
  }
  const after = counters();
  const delta = (name: string) =>
    (after[name] as number) - (before[name] as number);
  assert.equal(after.VmsRunning, 0, "no VM left running");
  assert.equal(delta("SystemHandlesOpened"), delta("SystemHandlesClosed"));
  assert.equal(delta("ProcessHandlesOpened"), delta("ProcessHandlesClosed"));
  assert.equal(delta("CallbacksRegistered"), delta("CallbacksUnregistered"));
  assert.equal(delta("ResultsAllocated"), delta("ResultsFreed"));
  assert.ok(delta("SystemHandlesOpened") > 0, "the counters saw the run");
  assert.equal(after.BadFrees, 0);
});

Deno.test("Machine.run reports an interrupted command as 130 and stays usable", async () => {
  await using vm = await Machine.boot({ imageDir: IMAGE_DIR, readOnly: true });
  const stop = new AbortController();
  let seen = "";
  const started = vm.run(["sh", "-c", "echo started; sleep 30; echo late"], {
    signal: stop.signal,
    output: (bytes) => {
      // Output may arrive in any pieces: look at all of it so far.
      seen += new TextDecoder().decode(bytes);
      if (seen.includes("started")) stop.abort();
    },
  });
  assert.equal((await started).status, 130);
  const { status, output } = await vm.run(["echo", "still here"]);
  assert.equal(status, 0);
  assert.equal(new TextDecoder().decode(output), "still here\n");
});
