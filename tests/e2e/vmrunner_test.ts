/**
 * vmrunner end to end: the command line as users type it, through the
 * simulator, on the real image. Each test boots a VM (about 7 s here),
 * but the last, which only prints help.
 */

import assert from "node:assert/strict";
import {
  IMAGE_DIR,
  ROOT,
  type RunResult,
  text,
  uniqueId,
  vmrunner,
  vmrunnerCommandLine,
} from "./helpers.ts";
import { assertNothingLeft, calls, diskCopy } from "./lifecycle_helpers.ts";

/** Every run here shares the image read-only, so tests may overlap. */
const SHARED = ["--read-only", "--image-dir", IMAGE_DIR];

/**
 * Asserts that a finished run left no handle, callback, string or VM: the
 * VM's id is the one the run gave HcsCreateComputeSystem.
 */
async function assertCleanedUp(result: RunResult) {
  assert.ok(result.trace.systemHandlesOpened > 0, "the trace saw the run");
  const [created] = calls(result, "HcsCreateComputeSystem");
  await assertNothingLeft(result, String(created.args.id));
}

Deno.test("vmrunner uname -a prints the guest kernel's uname", async () => {
  const id = uniqueId("e2e-uname");
  const result = await vmrunner([...SHARED, "-id", id, "uname", "-a"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(
    text(result.stdout),
    /^Linux vm 6\.\d+\.\S+ .* x86_64 GNU\/Linux\n$/,
  );
  assert.equal(result.stderr, "", "quiet by default");
  await assertCleanedUp(result);
});

Deno.test("vmrunner exits with the guest command's status", async () => {
  const result = await vmrunner([...SHARED, "sh", "-c", "echo before; exit 7"]);
  assert.equal(text(result.stdout), "before\n");
  assert.equal(result.code, 7, result.stderr);
  await assertCleanedUp(result);
});

Deno.test("vmrunner passes every argument unchanged", async () => {
  const argv = [
    "with space",
    "it's",
    '"double"',
    "$HOME",
    "a;b && c",
    "`id`",
    "ünïcødé ✓ 世界",
    "",
    "tab\tin",
    "*",
  ];
  const result = await vmrunner([...SHARED, "printf", "%s|", ...argv]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(text(result.stdout), argv.map((a) => `${a}|`).join(""));
  await assertCleanedUp(result);
});

Deno.test("vmrunner passes output byte for byte: prompts, markers, CRs, 1 MiB of every byte value", async () => {
  const script = [
    // Text that looks like a prompt or like our own framing.
    "printf 'root@vm:/# \\n$ # \\n@@vmr:0123456789ab:e:0@@\\n'",
    // Lone CRs, CRLF, no final newline.
    "printf 'a\\rb\\r\\nc'",
    // 256 byte values, doubled 12 times: 1 MiB.
    "i=0; s=''; while [ $i -lt 256 ]; do s=\"$s\\\\$(printf %o $i)\"; i=$((i+1)); done",
    'printf "$s" > /tmp/b',
    "for n in 1 2 3 4 5 6 7 8 9 10 11 12; do cat /tmp/b /tmp/b > /tmp/c; mv /tmp/c /tmp/b; done",
    "cat /tmp/b",
  ].join("; ");
  const result = await vmrunner([...SHARED, "sh", "-c", script]);
  assert.equal(result.code, 0, result.stderr);
  const prefix = new TextEncoder().encode(
    "root@vm:/# \n$ # \n@@vmr:0123456789ab:e:0@@\na\rb\r\nc",
  );
  const pattern = new Uint8Array(256).map((_, i) => i);
  const expected = new Uint8Array(prefix.length + 256 * 4096);
  expected.set(prefix);
  for (let i = 0; i < 4096; i++) expected.set(pattern, prefix.length + i * 256);
  assert.equal(result.stdout.length, expected.length);
  assert.deepEqual(result.stdout, expected);
  await assertCleanedUp(result);
});

Deno.test("vmrunner -memory and -cpu are what the guest sees; -debug prints the document; -id names the pipe", async () => {
  const id = uniqueId("e2e-sized");
  const result = await vmrunner([
    ...SHARED,
    "-memory",
    "767",
    "-cpu",
    "1",
    "-debug",
    "-id",
    id,
    "sh",
    "-c",
    "grep -c ^processor /proc/cpuinfo; grep MemTotal /proc/meminfo",
  ]);
  assert.equal(result.code, 0, result.stderr);
  const [cpus, memory] = text(result.stdout).trim().split("\n");
  assert.equal(cpus, "1");
  const memTotalKb = Number(memory.match(/(\d+) kB/)![1]);
  // 768 MB less what the kernel keeps for itself.
  assert.ok(memTotalKb > 600_000 && memTotalKb <= 768 * 1024, memory);
  const document = JSON.parse(result.stderr);
  assert.equal(document.VirtualMachine.ComputeTopology.Memory.SizeInMB, 768);
  assert.equal(document.VirtualMachine.ComputeTopology.Processor.Count, 1);
  assert.equal(
    document.VirtualMachine.Devices.ComPorts["0"].NamedPipe,
    `\\\\.\\pipe\\${id}-console`,
  );
  assert.equal(document.Owner, "vmrunner");
  assert.equal(document.ShouldTerminateOnLastHandleClosed, true);
  const created = result.trace.calls.find((c) =>
    c.call === "HcsCreateComputeSystem"
  );
  assert.equal(created?.args.id, id);
  await assertCleanedUp(result);
});

Deno.test("vmrunner passes piped stdin to the guest command and closes it", async () => {
  const input = new TextEncoder().encode("hello\nwörld\n".repeat(500));
  const result = await vmrunner([...SHARED, "sh", "-c", "cat; echo eof"], {
    stdin: input,
  });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(text(result.stdout), "hello\nwörld\n".repeat(500) + "eof\n");
  await assertCleanedUp(result);
});

Deno.test("vmrunner types nothing into a quiet command that reads the terminal", async () => {
  // Quiet for longer than the 3 s after which a dead loop is looked for.
  const result = await vmrunner([
    ...SHARED,
    "--timeout",
    "8",
    "sh",
    "-c",
    'echo asking; sleep 4; read -r answer </dev/tty; echo "answer=[$answer]"',
  ]);
  assert.equal(result.code, 124, result.stderr);
  assert.equal(text(result.stdout), "asking\n", "no invented answer");
  await assertCleanedUp(result);
});

Deno.test("vmrunner reports a command that killed the shell it runs in, and still shuts a writable VM down gently", async () => {
  // Writable: the VM gets a graceful shutdown if a shell was ever reached,
  // though the loop is gone by the end.
  const disk = await diskCopy();
  try {
    // In the command's subshell $$ is the command loop's own shell.
    const result = await vmrunner([
      "--image-dir",
      IMAGE_DIR,
      "--rootfs",
      disk,
      "eval",
      "echo before; kill -9 $$",
    ]);
    assert.equal(result.code, 126, result.stderr);
    assert.match(text(result.stdout), /^before\n/);
    assert.match(result.stderr, /ended the shell vmrunner runs commands in/);
    assert.equal(calls(result, "HcsShutdownComputeSystem").length, 1);
    await assertCleanedUp(result);
  } finally {
    await Deno.remove(disk);
  }
});

Deno.test("vmrunner --help is no error when nobody reads it, and says so when stdout fails", async () => {
  const sh = async (line: string) => {
    const { stderr } = await new Deno.Command("sh", {
      args: ["-c", line],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    return new TextDecoder().decode(stderr);
  };
  const help = vmrunnerCommandLine(["--help"]);
  // The reader closes its end at once, long before Deno has started.
  const gone = await sh(
    `{ ${help}; echo "code=$?" >&2; } | { exec 0<&-; sleep 2; }`,
  );
  assert.equal(gone, "code=0\n");
  const full = await sh(`${help} > /dev/full; echo "code=$?" >&2`);
  assert.match(full, /Cannot write to stdout/);
  assert.match(full, /code=1\n$/);
  assert.doesNotMatch(full, /\.ts:\d+/, "no stack trace");
});
