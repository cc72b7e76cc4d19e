/**
 * The serial console against real guests of the test bed (vm-image's
 * variants): logins, busybox's askfirst, bash 5 with bracketed paste, a
 * kernel that keeps talking, big and odd output, input, background
 * children, Ctrl+C, the interactive mode and the console log.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  IMAGE_DIR,
  Terminal,
  text,
  uniqueId,
  vmrunner,
  vmrunnerCommandLine,
} from "./helpers.ts";
import { assertVmGone } from "./lifecycle_helpers.ts";

/** Boot flags for a variant of the image, shared read-only. */
function variant(name: string): string[] {
  return [
    "--read-only",
    "--image-dir",
    IMAGE_DIR,
    "--rootfs",
    `${IMAGE_DIR}/variants/${name}/rootfs.vhdx`,
  ];
}

/** Fails instead of hanging if `work` takes longer than `ms`. */
async function within<T>(ms: number, what: string, work: Promise<T>) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} hung`)), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("vmrunner logs in at a getty prompt with VMRUNNER_USER and VMRUNNER_PASSWORD", async () => {
  const result = await vmrunner([...variant("getty"), "id", "-un"], {
    env: { VMRUNNER_USER: "test", VMRUNNER_PASSWORD: "test" },
  });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(text(result.stdout), "test\n");
  assert.ok(!result.stderr.includes("test"), "credentials never shown");
});

Deno.test("vmrunner says which credentials a getty needs when it has none", async () => {
  // The variant's root has a password; vmrunner tries root and is asked.
  const result = await vmrunner([...variant("getty"), "true"]);
  assert.equal(result.code, 126);
  assert.match(result.stderr, /password of "root"/);
  assert.match(result.stderr, /VMRUNNER_PASSWORD/);
  assert.deepEqual(result.trace.leaks, []);
});

Deno.test("vmrunner activates a busybox askfirst console", async () => {
  const result = await vmrunner([...variant("askfirst"), "echo", "active"]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(text(result.stdout), "active\n");
});

Deno.test("vmrunner under bash 5: no bracketed paste, prompt or wrap in output (pexpect #669, #238)", async () => {
  const long = "seven eight nine ten ".repeat(10); // 210 columns
  const result = await vmrunner([
    ...variant("bash"),
    "sh",
    "-c",
    `echo hello; echo "$1"; echo $((6 * 7))`,
    "-",
    long,
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(text(result.stdout), `hello\n${long}\n42\n`);
});

Deno.test("vmrunner keeps output and status right while the kernel prints (LAVA, OE-core 2dc4d2f8b5)", async () => {
  // slowboot's kernel keeps printing after the shell starts; the command
  // also writes emergency messages, which reach the console at any level.
  const script =
    '(for i in 1 2 3 4; do echo "<0>e2e chatter $i" > /dev/kmsg; ' +
    "sleep 0.2; done) & i=0; while [ $i -lt 3000 ]; do i=$((i+1)); " +
    'echo "line $i"; done; wait; exit 5';
  const result = await vmrunner([...variant("slowboot"), "sh", "-c", script]);
  assert.equal(result.code, 5, result.stderr);
  const expected = Array.from({ length: 3000 }, (_, i) => `line ${i + 1}\n`);
  assert.equal(text(result.stdout), expected.join(""));
  const removed = result.stderr.match(/guest kernel: .*e2e chatter \d/g) ?? [];
  assert.equal(removed.length, 4, result.stderr);
});

Deno.test("vmrunner moves 2 MiB and a 100 kB line without a newline", async () => {
  const result = await vmrunner([
    ...variant("root"),
    "sh",
    "-c",
    "head -c 2097152 /dev/zero | tr '\\0' z; echo; head -c 100000 /dev/zero | tr '\\0' y",
  ]);
  assert.equal(result.code, 0, result.stderr);
  const out = text(result.stdout);
  assert.equal(out.length, 2097152 + 1 + 100000);
  assert.equal(out, "z".repeat(2097152) + "\n" + "y".repeat(100000));
});

Deno.test("vmrunner passes commands longer than the guest's line limits whole", async () => {
  const word = "0123456789".repeat(600); // 6000 bytes: above 1023 and 4095
  const result = await vmrunner([
    ...variant("root"),
    "sh",
    "-c",
    'printf %s "$1" | wc -c; printf %s "$1" | md5sum',
    "-",
    word,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const [count, sum] = text(result.stdout).trim().split("\n");
  assert.equal(count.trim(), "6000");
  assert.equal(sum.split(" ")[0], createHash("md5").update(word).digest("hex"));
});

Deno.test("vmrunner's command reads /dev/null when stdin is not piped, and returns despite a background child (nixpkgs #165146)", async () => {
  const result = await within(
    90_000,
    "vmrunner with a background child",
    vmrunner([
      ...variant("root"),
      "sh",
      "-c",
      "cat; sleep 600 & echo started",
    ]),
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(text(result.stdout), "started\n");
});

Deno.test("vmrunner ends with the last console lines when the guest offers no shell", async () => {
  // init=/bin/cat gives a console that echoes but never runs anything.
  const result = await vmrunner([
    ...variant("root"),
    "--boot-timeout",
    "25",
    "--cmdline",
    "console=ttyS0 root=/dev/sda ro init=/bin/cat",
    "true",
  ]);
  assert.equal(result.code, 126);
  assert.match(result.stderr, /No shell answered on the console in time/);
  assert.match(result.stderr, /Last console lines:\n.*\| /);
  assert.deepEqual(result.trace.leaks, []);
});

Deno.test("Ctrl+C interrupts the guest command, stops the VM and exits 130", async () => {
  const ctrlCId = uniqueId("e2e-ctrl-c");
  let interrupted = false;
  const running = vmrunner([
    ...variant("root"),
    "-id",
    ctrlCId,
    "sh",
    "-c",
    "echo started; sleep 600; echo never",
  ], {
    onStdout: (soFar, child) => {
      if (!interrupted && soFar.includes("started")) {
        interrupted = true;
        child.kill("SIGINT");
      }
    },
  });
  const result = await within(120_000, "interrupted vmrunner", running);
  assert.equal(result.code, 130, result.stderr);
  assert.equal(text(result.stdout), "started\n");
  assert.match(result.stderr, /SIGINT/);
  assert.deepEqual(result.trace.leaks, []);
  // The supervisor ends on its own once the last handle has closed.
  await assertVmGone(ctrlCId);
});

Deno.test("vmrunner --console-log keeps the whole console, boot included", async () => {
  const log = await Deno.makeTempFile({ prefix: "vmrunner-console-" });
  try {
    const result = await vmrunner([
      ...variant("root"),
      "--console-log",
      log,
      "echo",
      "logged",
    ]);
    assert.equal(result.code, 0, result.stderr);
    const console = await Deno.readTextFile(log);
    assert.match(console, /Linux version 6\./);
    assert.match(console, /Run \/init as init process/);
    assert.match(console, /logged\n/);
  } finally {
    await Deno.remove(log);
  }
});

Deno.test("vmrunner -i with piped stdin runs what it reads", async () => {
  const result = await vmrunner([...variant("root"), "-i"], {
    stdin: new TextEncoder().encode("echo hi-from-$((40 + 2))\n"),
  });
  assert.equal(result.code, 0, result.stderr);
  assert.match(text(result.stdout), /hi-from-42/);
  assert.match(result.stderr, /leave with Ctrl\+\] then q/);
});

Deno.test("vmrunner -i in a terminal: raw keys, Ctrl+C to the guest, window size, escape, terminal restored", async () => {
  await using terminal = await Terminal.start(
    vmrunnerCommandLine([...variant("root"), "-i"]),
    { columns: 132, rows: 40 },
  );
  // capture-pane drops trailing blanks: the prompt ends in "#".
  await terminal.waitFor(/root@vm:[^\n]*#$/m, "the guest prompt");
  await terminal.keys("stty size; sleep 300", "Enter");
  await terminal.waitFor(/^40 132$/m, "the host window size in the guest");
  await terminal.keys("C-c");
  await terminal.keys("echo after-$((1+1))", "Enter");
  await terminal.waitFor(/^after-2$/m, "a prompt after Ctrl+C");
  await terminal.keys("C-]", "q");
  const end = await terminal.waitFor(/^exit=\d+$/m, "vmrunner's exit");
  assert.match(end, /^exit=0$/m);
  // The host terminal is back in canonical mode.
  assert.match(end, /^icanon$/m);
});
