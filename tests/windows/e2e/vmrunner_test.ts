/**
 * vmrunner end to end on Windows: main.ts run by the Windows build of Deno
 * under Wine, with exactly vmrunner.exe's permissions, against the test
 * bed's vmcompute.dll (which starts QEMU) and the real image. Each test
 * boots a VM; every run shares the image read-only.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DENO_EXE,
  denoRunArgs,
  IMAGE_DIR,
  type Running,
  type RunResult,
  sendCtrlEvent,
  text,
  tracedPid,
  vmGone,
  vmrunner,
  windowsPath,
  WINE_CACHE,
} from "./helpers.ts";

const READ_ONLY = ["--read-only"];

let serial = 0;
function uniqueId(label: string): string {
  return `win-e2e-${label}-${Deno.pid}-${++serial}`;
}

/** A run that left no handle, callback, string or VM behind. */
async function assertCleanedUp(result: RunResult, id: string) {
  assert.equal(result.timedOut, false, "the run ended by itself");
  assert.ok(result.trace.systemHandlesOpened > 0, "the trace saw the run");
  assert.deepEqual(result.trace.leaks, [], "nothing left open");
  assert.equal(result.trace.badFrees, 0, "only our strings were freed");
  assert.equal(
    result.trace.resultsFreed,
    result.trace.resultsAllocated,
    "every string HCS returned was freed (ole32's CoTaskMemFree)",
  );
  assert.deepEqual(await vmGone(id), [], "no VM left running");
}

Deno.test("vmrunner uname -a boots the image and prints the guest's uname", async () => {
  const id = uniqueId("uname");
  // No --image-dir: deno.exe's folder has no vm-image, so the one in the
  // working directory is used.
  const result = await vmrunner([...READ_ONLY, "-id", id, "uname", "-a"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(
    text(result.stdout),
    /^Linux vm 6\.\d+\.\S+ .* x86_64 GNU\/Linux\n$/,
  );
  assert.equal(result.stderr, "", "quiet by default");
  await assertCleanedUp(result, id);
  // HCS's notifications came on a thread of its own, not one that called
  // it, and the run still saw every one it waited for.
  const created = result.trace.calls.find((call) =>
    call.call === "HcsCreateComputeSystem"
  );
  assert.equal(created?.args.id, id);
  assert.ok(result.trace.notifications >= 3, "create, start, exit");
});

Deno.test("vmrunner exits with the guest command's status", async () => {
  const id = uniqueId("status");
  const result = await vmrunner([
    ...READ_ONLY,
    "-id",
    id,
    "sh",
    "-c",
    "echo before; exit 7",
  ]);
  assert.equal(text(result.stdout), "before\n");
  assert.equal(result.code, 7, result.stderr);
  await assertCleanedUp(result, id);
});

Deno.test("vmrunner passes piped stdin to the guest command and closes it", async () => {
  const id = uniqueId("stdin");
  const input = "hello\nwörld ✓\n".repeat(200);
  const result = await vmrunner(
    [...READ_ONLY, "-id", id, "sh", "-c", "cat; echo eof"],
    { stdin: new TextEncoder().encode(input) },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(text(result.stdout), input + "eof\n");
  await assertCleanedUp(result, id);
});

Deno.test("vmrunner -i runs an interactive session driven through stdin", async () => {
  const id = uniqueId("interactive");
  const result = await vmrunner(["-i", ...READ_ONLY, "-id", id], {
    stdin: new TextEncoder().encode(
      "echo $((6 * 7))-answer\ncd /etc && pwd\n",
    ),
  });
  assert.equal(result.code, 0, result.stderr);
  const output = text(result.stdout);
  assert.match(output, /42-answer/);
  assert.match(output, /\/etc\r?\n/);
  assert.match(result.stderr, /connected to .*console/);
  assert.match(result.stderr, /left .*console/);
  await assertCleanedUp(result, id);
});

Deno.test("vmrunner --pipe-server serves the console pipe and the VM connects to it", async () => {
  const id = uniqueId("pipe-server");
  const log = await Deno.makeTempFile({ prefix: "vmrunner-console-" });
  try {
    const result = await vmrunner([
      ...READ_ONLY,
      "--pipe-server",
      "--verbose",
      "--console-log",
      windowsPath(log),
      "-id",
      id,
      "cat",
      "/proc/cmdline",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(text(result.stdout), /console=ttyS0 .*\bro\b/);
    assert.match(result.stderr, /serving the console pipe/);
    // The pipe was there before the VM: the log starts at the kernel's
    // first line, which --console-log could write (--allow-write).
    assert.match(await Deno.readTextFile(log), /Linux version 6\./);
    await assertCleanedUp(result, id);
  } finally {
    await Deno.remove(log);
  }
});

Deno.test("vmrunner finds vmcompute.dll by name only: off the search path it says HCS is missing", async () => {
  const result = await vmrunner([...READ_ONLY, "uname"], { noDllPath: true });
  assert.equal(result.code, 125, result.stderr);
  assert.match(
    result.stderr,
    /Cannot load vmcompute\.dll: the Host Compute Service is not available/,
  );
  assert.match(result.stderr, /Hyper-V/);
  assert.equal(result.trace.calls.length, 0, "nothing was started");
});

Deno.test("vmrunner finds vm-image beside its executable (Deno.execPath())", async () => {
  // A folder as a release unpacks: the executable with vm-image beside it.
  // With deno-win the executable is deno.exe, so a hard link of it stands
  // in for vmrunner.exe; the working directory has no vm-image.
  const home = await Deno.makeTempDir({
    dir: WINE_CACHE,
    prefix: "execpath-",
  });
  const elsewhere = await Deno.makeTempDir({ prefix: "vmrunner-cwd-" });
  try {
    await Deno.link(DENO_EXE, join(home, "deno.exe"));
    await Deno.mkdir(join(home, "vm-image"));
    for (const file of ["vmlinuz", "initrd", "rootfs.vhdx"]) {
      await Deno.link(join(IMAGE_DIR, file), join(home, "vm-image", file));
    }
    const id = uniqueId("execpath");
    const result = await vmrunner(
      [...READ_ONLY, "-debug", "-id", id, "echo", "found"],
      {
        exe: { path: join(home, "deno.exe"), prefixArgs: denoRunArgs() },
        cwd: elsewhere,
      },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(text(result.stdout), "found\n");
    const document = JSON.parse(result.stderr);
    assert.equal(
      document.VirtualMachine.Chipset.LinuxKernelDirect.KernelFilePath,
      windowsPath(join(home, "vm-image", "vmlinuz")),
    );
    await assertCleanedUp(result, id);
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(elsewhere, { recursive: true });
  }
});

/**
 * Runs a guest command that waits, interrupts vmrunner once the command
 * runs, and checks that the VM was torn down in order.
 */
async function interruptTest(
  label: string,
  interrupt: (run: Running) => Promise<void>,
  signal: string,
) {
  const id = uniqueId(label);
  let sent = false;
  let failure: unknown;
  const result = await vmrunner(
    [...READ_ONLY, "-id", id, "sh", "-c", "echo started; sleep 600"],
    {
      onStdout(soFar, run) {
        if (sent || !soFar.includes("started")) return;
        sent = true;
        interrupt(run).catch((error) => {
          // Not delivered: end the run now rather than at its time limit.
          failure = error;
          run.child.kill("SIGKILL");
        });
      },
    },
  );
  if (failure) throw failure;
  assert.ok(sent, `the command never started: ${result.stderr}`);
  assert.equal(result.code, 130, result.stderr);
  assert.match(result.stderr, new RegExp(`${signal}: stopping the VM`));
  await assertCleanedUp(result, id);
}

Deno.test("Ctrl+C (Wine turns SIGINT into CTRL_C_EVENT) stops the guest command and the VM", async () => {
  await interruptTest("ctrl-c", ({ child }) => {
    child.kill("SIGINT");
    return Promise.resolve();
  }, "SIGINT");
});

Deno.test("Ctrl+Break (CTRL_BREAK_EVENT, as the console delivers it) stops the guest command and the VM", async () => {
  await interruptTest("ctrl-break", async ({ trace }) => {
    const pid = await tracedPid(trace);
    if (pid === undefined) throw new Error("no Windows pid in the trace");
    await sendCtrlEvent(pid, "break");
  }, "SIGBREAK");
});

Deno.test("vmrunner list frees every string HCS returns with ole32's CoTaskMemFree, failing or not", async () => {
  const listed = await vmrunner(["list"]);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(text(listed.stdout), /^ID\s+STATE\s+OWNER/);
  // As for a user outside "Hyper-V Administrators".
  const denied = await vmrunner(["list"], {
    env: { HCS_SIM: "enumerate.fail=0x80070005" },
  });
  assert.equal(denied.code, 125, denied.stderr);
  assert.match(
    denied.stderr,
    /HcsEnumerateComputeSystems failed: .*0x80070005/,
  );
  assert.match(denied.stderr, /Run vmrunner as Administrator/);
  for (const { trace } of [listed, denied]) {
    // The listing, or the failure's result document.
    assert.ok(trace.resultsAllocated > 0, "HCS returned strings");
    assert.equal(trace.resultsFreed, trace.resultsAllocated, "all freed");
    assert.deepEqual(trace.leaks, [], "nothing left open");
  }
});

Deno.test("vmrunner --help works with the shipped permissions", async () => {
  const result = await vmrunner(["--help"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(text(result.stdout), /Usage: vmrunner \[options\]/);
  assert.match(text(result.stdout), /--pipe-server/);
});
