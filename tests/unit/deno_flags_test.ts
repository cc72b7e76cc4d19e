import assert from "node:assert/strict";
import {
  TEST_BED_PERMISSIONS,
  TEST_BED_RUN_FLAGS,
  VMRUNNER_PERMISSIONS,
} from "../../tools/deno_flags.ts";

Deno.test("deno task start runs vmrunner with its V8 flags and the test bed's permissions", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  );
  const command: string = config.tasks.start.command;
  const flags = command.match(/deno run (.*) main\.ts$/)?.[1]?.split(" ");
  assert.deepEqual(flags, [...TEST_BED_RUN_FLAGS]);
});

Deno.test("vmrunner never gets --allow-all or a prompt", () => {
  for (const list of [VMRUNNER_PERMISSIONS, TEST_BED_PERMISSIONS]) {
    assert.ok(!list.includes("--allow-all") && !list.includes("-A"));
    assert.ok(list.includes("--no-prompt"));
  }
  // The shipped .exe reaches its pipes through kernel32, not Deno's net.
  assert.ok(!VMRUNNER_PERMISSIONS.includes("--allow-net"));
});
