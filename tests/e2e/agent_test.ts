/**
 * HcsCreateProcess first, the console second: with a guest agent (the
 * simulator's `process=agent`), commands run through the process API and
 * its stdio handles.
 */

import assert from "node:assert/strict";
import { IMAGE_DIR, text, vmrunner } from "./helpers.ts";

Deno.test("vmrunner uses the guest agent's stdio handles when HCS returns them", async () => {
  const result = await vmrunner(
    ["--read-only", "--image-dir", IMAGE_DIR, "cat"],
    {
      stdin: new TextEncoder().encode("through the agent\n"),
      env: { HCS_SIM: "process=agent;process.exit_code=9" },
    },
  );
  assert.equal(result.code, 9, result.stderr);
  const out = text(result.stdout);
  // The simulator's scripted process names the command, echoes its stdin
  // and writes a line to stderr.
  assert.match(out, /^hcs-sim: process \d+: .*cat/m);
  assert.match(out, /^through the agent$/m);
  assert.match(out, /^hcs-sim: stderr$/m);
  assert.deepEqual(result.trace.leaks, []);
  const closedStdin = result.trace.calls.some((call) =>
    call.call === "HcsModifyProcess"
  );
  assert.ok(closedStdin, "stdin was closed through HcsModifyProcess");
});

Deno.test("vmrunner falls back to the console when HcsCreateProcess fails", async () => {
  const result = await vmrunner(
    ["--read-only", "--image-dir", IMAGE_DIR, "uname", "-s"],
    { env: { HCS_SIM: "create_process.fail=0x80370108" } },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(text(result.stdout), "Linux\n");
});
