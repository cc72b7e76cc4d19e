/**
 * Signals on Linux: SIGINT, SIGTERM and SIGHUP at every phase of
 * a run stop the VM, close its handles, unregister its callbacks and exit
 * 130 or 143; a second Ctrl+C terminates at once; SIGKILL takes the VM
 * with it. Each phase is held open by a simulator delay or by the guest
 * itself, and found in `--verbose`'s progress lines, so that the signal
 * lands where the test means it to.
 */

import assert from "node:assert/strict";
import {
  IMAGE_DIR,
  Terminal,
  vmProcessesFor,
  vmrunnerCommandLine,
} from "./helpers.ts";
import {
  assertNothingLeft,
  assertVmGone,
  calls,
  diskCopy,
  LONG_COMMAND,
  type Running,
  SHARED,
  start,
  type StartOptions,
  testId,
} from "./lifecycle_helpers.ts";

const SIGNALS = [
  ["SIGINT", 130],
  ["SIGTERM", 143],
  ["SIGHUP", 143],
] as const;

interface Phase {
  /** What the test calls it. */
  name: string;
  /** Extra arguments and environment that hold the phase open. */
  args?: string[];
  options?: StartOptions;
  /** Waits until the run is in the phase. */
  reached(run: Running): Promise<void>;
}

const PHASES: Phase[] = [
  {
    name: "creating",
    // CreateCompleted comes 4 s late.
    options: { env: { HCS_SIM: "create.delay=4000" } },
    reached: (run) => run.waitFor("stderr", /creating lc-/),
  },
  {
    name: "starting",
    options: { env: { HCS_SIM: "start.delay=4000" } },
    reached: (run) => run.waitFor("stderr", /starting lc-/),
  },
  {
    name: "waiting for the console pipe",
    // The VM runs without COM ports: the pipe never comes.
    options: { env: { HCS_SIM: "no_com=1", VMRUNNER_TIMEOUT_CONSOLE: "60" } },
    reached: (run) => run.waitFor("stderr", /waiting for the console /),
  },
  {
    name: "waiting for a shell",
    // The guest boots for seconds after its console connects.
    reached: (run) => run.waitFor("stderr", /connected; waiting for a shell/),
  },
  {
    name: "running",
    reached: (run) => run.waitFor("stdout", /started/),
  },
  {
    name: "interactive",
    args: ["-i"],
    options: { stdin: true },
    reached: async (run) => {
      await run.stdin!.write(new TextEncoder().encode("echo in-$((6*7))\n"));
      await run.waitFor("stdout", /in-42/);
    },
  },
];

for (const phase of PHASES) {
  Deno.test(`SIGINT, SIGTERM and SIGHUP while ${phase.name} stop the VM and exit 130/143`, async () => {
    const runs = SIGNALS.map(([signal, status]) => {
      const id = testId(signal.toLowerCase());
      const command = phase.args ?? LONG_COMMAND;
      const run = start([...SHARED, "--verbose", "-id", id, ...command], {
        ...phase.options,
      });
      return { id, signal, status, run };
    });
    try {
      await Promise.all(runs.map(async ({ id, signal, status, run }) => {
        await phase.reached(run);
        const sent = Date.now();
        run.child.kill(signal);
        const result = await run.result();
        const took = Date.now() - sent;
        assert.equal(result.code, status, `${signal}: ${result.stderr}`);
        assert.match(result.stderr, new RegExp(`${signal}: stopping the VM`));
        assert.ok(took < 15_000, `${signal} took ${took} ms to stop ${id}`);
        // The VM was ended at once, whatever state it was in: not once the
        // held phase was over. (Closing the handle still waits for a
        // delayed notification, as HCS waits for callbacks in flight.)
        const terminated = calls(result, "HcsTerminateComputeSystem");
        assert.equal(terminated.length, 1, `${signal}: ${result.stderr}`);
        const after = terminated[0].t - sent;
        assert.ok(after < 2_000, `${signal}: terminated ${after} ms later`);
        await assertNothingLeft(result, id);
      }));
    } finally {
      for (const { run } of runs) {
        try {
          run.child.kill("SIGKILL");
        } catch {
          // Ended already.
        }
      }
    }
  });
}

/**
 * Starts a long command on a VM with a writable copy of the disk, which
 * gets a graceful shutdown when stopped (a read-only one is terminated).
 */
async function startWritable(label: string, env?: Record<string, string>) {
  const disk = await diskCopy();
  const id = testId(label);
  const run = start([
    "--image-dir",
    IMAGE_DIR,
    "--rootfs",
    disk,
    "--verbose",
    "-id",
    id,
    ...LONG_COMMAND,
  ], { env });
  return { disk, id, run };
}

Deno.test("a second Ctrl+C terminates at once a VM whose shutdown hangs", async () => {
  const { disk, id, run } = await startWritable("twice", {
    HCS_SIM: "shutdown.ignore=1", // would wait 30 s
  });
  try {
    await run.waitFor("stdout", /started/);
    run.child.kill("SIGINT");
    await run.waitFor("stderr", new RegExp(`stopping ${id}`));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const second = Date.now();
    run.child.kill("SIGINT");
    const result = await run.result();
    assert.ok(Date.now() - second < 5_000, "terminated, not shut down");
    assert.equal(result.code, 130, result.stderr);
    assert.match(result.stderr, /SIGINT again: terminating the VM now/);
    assert.equal(calls(result, "HcsShutdownComputeSystem").length, 1);
    assert.equal(calls(result, "HcsTerminateComputeSystem").length, 1);
    await assertNothingLeft(result, id);
  } finally {
    await Deno.remove(disk);
  }
});

Deno.test("one Ctrl+C delivered twice, by the terminal and by deno task, is one orderly stop", async () => {
  const { disk, id, run } = await startWritable("double");
  try {
    await run.waitFor("stdout", /started/);
    // deno task's copy comes a few milliseconds after the terminal's (two
    // signals with no gap would reach the listener as one).
    run.child.kill("SIGINT");
    await new Promise((resolve) => setTimeout(resolve, 20));
    run.child.kill("SIGINT");
    const result = await run.result();
    assert.equal(result.code, 130, result.stderr);
    assert.match(result.stderr, /SIGINT: stopping the VM/);
    assert.doesNotMatch(result.stderr, /SIGINT again/);
    assert.equal(calls(result, "HcsShutdownComputeSystem").length, 1);
    await assertNothingLeft(result, id);
  } finally {
    await Deno.remove(disk);
  }
});

Deno.test("SIGKILL of vmrunner takes its VM with it (terminate on last handle close)", async () => {
  const id = testId("sigkill");
  const run = start([...SHARED, "-id", id, ...LONG_COMMAND]);
  await run.waitFor("stdout", /started/);
  assert.ok((await vmProcessesFor(id)).some((line) => line.includes("qemu")));
  run.child.kill("SIGKILL");
  const result = await run.result();
  assert.equal(result.code, 137);
  // vmrunner had no chance to close anything: HCS ends the VM itself.
  assert.notDeepEqual(result.trace.leaks, []);
  await assertVmGone(id);
});

Deno.test("SIGTERM in -i on a terminal stops the VM and restores the terminal", async () => {
  const id = testId("tty");
  {
    await using terminal = await Terminal.start(
      vmrunnerCommandLine([...SHARED, "-id", id, "-i"]),
      { columns: 100, rows: 30 },
    );
    const prompt = await terminal.waitFor(
      /root@vm:[^\n]*#$|^exit=\d+$/m,
      "the guest prompt",
    );
    assert.doesNotMatch(prompt, /^exit=/m, "vmrunner ended early");
    const [vmrunner] = (await vmProcessesFor(id)).filter((line) =>
      /^\s*\d+ (\S+=\S+ )*deno run /.test(line)
    );
    Deno.kill(Number(vmrunner.trim().split(/\s+/)[0]), "SIGTERM");
    const end = await terminal.waitFor(/^exit=\d+$/m, "vmrunner's exit");
    assert.match(end, /^exit=143$/m);
    assert.match(end, /SIGTERM: stopping the VM/);
    // The host terminal is back in canonical mode.
    assert.match(end, /^icanon$/m);
  }
  // After the session, whose own command line names the id.
  await assertVmGone(id);
});
