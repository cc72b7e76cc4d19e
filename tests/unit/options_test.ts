import assert from "node:assert/strict";
import {
  normalizeArgs,
  parseArgs,
  type RunRequest,
  UsageError,
} from "../../cli/options.ts";

Deno.test("normalizeArgs() accepts the single-dash flags users know", () => {
  assert.deepEqual(
    normalizeArgs([
      "-memory",
      "4096",
      "-cpu",
      "4",
      "-debug",
      "-id",
      "x",
      "ls",
      "-memory",
    ]),
    ["--memory", "4096", "--cpu", "4", "--debug", "--id", "x", "ls", "-memory"],
  );
  assert.deepEqual(normalizeArgs(["-i"]), ["-i"]);
  assert.deepEqual(normalizeArgs(["-memory=64", "true"]), [
    "--memory=64",
    "true",
  ]);
});

Deno.test("parseArgs() reads the seed's command lines", () => {
  const run = parseArgs([
    "-memory",
    "2048",
    "-cpu",
    "1",
    "-debug",
    "-id",
    "my-vm",
    "ls",
    "-la",
    "/",
  ]) as RunRequest;
  assert.equal(run.kind, "run");
  assert.deepEqual(run.command, ["ls", "-la", "/"]);
  assert.equal(run.memoryMb, 2048);
  assert.equal(run.cpus, 1);
  assert.equal(run.debug, true);
  assert.equal(run.id, "my-vm");
  const gnu = parseArgs(["--memory", "1024", "--", "list"]) as RunRequest;
  assert.deepEqual(gnu.command, ["list"]);
  assert.equal((parseArgs(["-i"]) as RunRequest).interactive, true);
  assert.deepEqual(parseArgs(["list", "--all"]), { kind: "list", all: true });
  assert.deepEqual(parseArgs(["kill", "a", "b"]), {
    kind: "kill",
    ids: ["a", "b"],
    all: false,
    anyOwner: false,
  });
});

Deno.test("parseArgs() rejects bad input with a message naming it", () => {
  const cases: [string[], RegExp][] = [
    [["--memory", "0", "true"], /--memory must be greater than zero/],
    [["--memory", "-5", "true"], /--memory/],
    [["--memory", "lots", "true"], /--memory must be a whole number/],
    [["--memory", "99999999", "true"], /more than this host/],
    [["--cpu", "0", "true"], /--cpu must be greater than zero/],
    [["--cpu", "100000", "true"], /logical processors/],
    [["--id", "a/b", "true"], /letters, digits/],
    [["--id", "x".repeat(65), "true"], /1 to 64/],
    [["--bogus", "true"], /unknown option '--bogus'/],
    [[], /Nothing to run/],
    [["-i", "ls"], /takes no command/],
    [["kill"], /ids of the VMs/],
    [["--timeout", "soon", "true"], /--timeout/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseArgs(args), (error: unknown) => {
      assert.ok(error instanceof UsageError, `${args}: ${error}`);
      assert.match(error.message, message, args.join(" "));
      return true;
    });
  }
});

Deno.test("parseArgs() takes credentials from the environment", () => {
  const run = parseArgs(["true"], {
    VMRUNNER_USER: "test",
    VMRUNNER_PASSWORD: "secret",
  }) as RunRequest;
  assert.equal(run.user, "test");
  assert.equal(run.password, "secret");
});
