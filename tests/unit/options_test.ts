import assert from "node:assert/strict";
import {
  parseArgs,
  type RunRequest,
  timeoutsFromEnv,
  UsageError,
} from "../../cli/options.ts";
import { editDistance } from "../../cli/flags.ts";

Deno.test("parseArgs() leaves the guest command's own flags alone", () => {
  const run = parseArgs([
    "--memory",
    "64",
    "ls",
    "-memory",
    "--debug",
    "-i",
  ]) as RunRequest;
  assert.deepEqual(run.command, ["ls", "-memory", "--debug", "-i"]);
  assert.equal(run.debug, false);
  assert.equal(run.interactive, false);
  // A flag's value is not the start of the command, even one like a flag.
  const user = parseArgs(["--user", "-x", "--", "--help"]) as RunRequest;
  assert.equal(user.user, "-x");
  assert.deepEqual(user.command, ["--help"]);
  assert.deepEqual((parseArgs(["-", "a"]) as RunRequest).command, ["-", "a"]);
  // The last of a repeated flag counts, as in most tools.
  assert.equal(
    (parseArgs(["--memory", "64", "--memory", "128", "true"]) as RunRequest)
      .memoryMb,
    128,
  );
});

Deno.test("parseArgs() prints help and the version, and runs nothing", () => {
  for (const args of [["--help"], ["-h"], ["-help", "ls"], ["-i", "-h"]]) {
    const request = parseArgs(args);
    assert.equal(request.kind, "print", args.join(" "));
    if (request.kind !== "print") continue;
    assert.match(request.text, /^Usage: vmrunner \[options\]/);
    assert.match(request.text, / {2}--memory <MB> +memory of the VM/);
    // Hidden spellings stay out of help.
    assert.doesNotMatch(request.text, /--cpus/);
    for (const line of request.text.split("\n")) {
      assert.ok(line.length <= 80, `longer than 80 columns: ${line}`);
    }
  }
  const version = parseArgs(["--version"]);
  assert.equal(version.kind, "print");
  assert.match(
    (version as { text: string }).text,
    /^vmrunner \d+\.\d+\.\d+\n$/,
  );
  const kill = parseArgs(["kill", "--help"]);
  assert.match((kill as { text: string }).text, /--any-owner/);
  const list = parseArgs(["list", "-h"]);
  assert.match((list as { text: string }).text, /Usage: vmrunner list/);
});

Deno.test("parseArgs() reads the seed's command lines, single-dash and GNU-style", () => {
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
  const shell = parseArgs(["-memory", "4096", "-id", "x", "-i"]) as RunRequest;
  assert.equal(shell.memoryMb, 4096);
  assert.equal(shell.id, "x");
  assert.equal(shell.interactive, true);
  const inline = parseArgs(["-memory=64", "--cpu=1", "true"]) as RunRequest;
  assert.equal(inline.memoryMb, 64);
  assert.equal(inline.cpus, 1);
  assert.deepEqual(inline.command, ["true"]);
  assert.deepEqual(parseArgs(["list", "--all"]), { kind: "list", all: true });
  assert.deepEqual(parseArgs(["kill", "a", "b"]), {
    kind: "kill",
    ids: ["a", "b"],
    all: false,
    anyOwner: false,
  });
  // kill's flags may come after its ids.
  assert.deepEqual(parseArgs(["kill", "a", "--any-owner", "b"]), {
    kind: "kill",
    ids: ["a", "b"],
    all: false,
    anyOwner: true,
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
    [["--bogus", "true"], /unknown option '--bogus'$/],
    [
      ["--memroy", "64", "true"],
      /unknown option '--memroy' \(did you mean --memory\?\)/,
    ],
    [["-debgu", "true"], /unknown option '-debgu' \(did you mean --debug\?\)/],
    [["--debug=1", "true"], /option '--debug' takes no value/],
    [["--memory"], /option '--memory <MB>' needs a value/],
    [
      ["-memory", "lots", "true"],
      /^-memory must be a whole number \(got "lots"\)$/,
    ],
    [["--memory=", "true"], /--memory must be a whole number/],
    [["list", "extra"], /list takes no arguments/],
    [["--all", "list"], /option of list and kill: put it after the command/],
    [
      ["-any-owner", "kill", "x"],
      /option of kill: .*vmrunner kill --any-owner/,
    ],
    [["kill", "a", "--all"], /ids or --all, not both/],
    [[], /Nothing to run/],
    [["-i", "ls"], /takes no command/],
    [["kill"], /ids of the VMs/],
    [["--timeout", "soon", "true"], /--timeout/],
    // Timers fire at once beyond 2^31 - 1 ms.
    [["--timeout", "2200000", "true"], /at most 2147483 seconds/],
    [["--boot-timeout", "1e9", "true"], /at most 2147483 seconds/],
    [["--image-dir", "", "true"], /--image-dir must not be empty/],
    [["--kernel=", "true"], /--kernel must not be empty/],
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

Deno.test("editDistance() counts edits, a swap as one", () => {
  assert.equal(editDistance("memory", "memory"), 0);
  assert.equal(editDistance("memroy", "memory"), 1);
  assert.equal(editDistance("mem", "memory"), 3);
  assert.equal(editDistance("", "id"), 2);
  assert.equal(editDistance("cpu", "cpus"), 1);
});

Deno.test("timeoutsFromEnv() reads seconds and refuses what timers cannot count", () => {
  assert.deepEqual(timeoutsFromEnv({ VMRUNNER_TIMEOUT_START: "1.5" }), {
    hcs: { startMs: 1500 },
  });
  assert.throws(
    () => timeoutsFromEnv({ VMRUNNER_TIMEOUT_START: "3000000" }),
    /VMRUNNER_TIMEOUT_START must be at most 2147483 seconds/,
  );
  assert.throws(
    () => timeoutsFromEnv({ VMRUNNER_TIMEOUT_CONSOLE: "-1" }),
    /VMRUNNER_TIMEOUT_CONSOLE must be a number of seconds above zero/,
  );
});

Deno.test("parseArgs() takes an empty password, which a getty can ask for", () => {
  assert.equal(
    (parseArgs(["--password", "", "true"]) as RunRequest).password,
    "",
  );
});
