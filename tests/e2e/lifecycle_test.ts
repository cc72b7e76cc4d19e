/**
 * No VM left behind: every way a run can fail, through the
 * simulator's fault switches, ends with a message that says what happened
 * and what to try, vmrunner's exit status, and nothing left: no handle,
 * callback or result string (the trace), no supervisor or QEMU (ps), no
 * registry entry. Also bad input (refused before any VM is made), `list`
 * and `kill`, and several runs at once. Signals: lifecycle_signals_test.ts.
 */

import assert from "node:assert/strict";
import { ComputeSystem } from "../../hcs/compute_system.ts";
import { IMAGE_DIR, ROOT, text } from "./helpers.ts";
import {
  assertNothingLeft,
  assertVmGone,
  calls,
  diskCopy,
  LONG_COMMAND,
  registered,
  run,
  type Running,
  SHARED,
  start,
  STATE_DIR,
  testId,
} from "./lifecycle_helpers.ts";

/** Ends a run that a failed test left running (SIGTERM). */
function stop(running: Running) {
  try {
    running.child.kill("SIGTERM");
  } catch {
    // It has ended already.
  }
}

/** What `vmrunner list` printed, as rows of cells. */
function table(output: string): string[][] {
  return output.trim().split("\n").map((line) => line.split(/\s{2,}/));
}

Deno.test("a failed create shows HCS's error events, exits 125 and leaves nothing", async () => {
  const sync = testId("create-fail");
  const async = testId("create-fail-async");
  const [failed, failedLater] = await Promise.all([
    run([...SHARED, "-id", sync, "true"], {
      env: {
        HCS_SIM: "create.fail=0x80070057;" +
          "create.message=VirtualMachine.ComputeTopology: no room here",
      },
    }),
    // The handle of a pending create is valid, and must be closed too.
    run([...SHARED, "-id", async, "true"], {
      env: {
        HCS_SIM: "create.fail_async=0xC0370100;" +
          "create.message=the worker process died",
      },
    }),
  ]);
  assert.equal(failed.code, 125, failed.stderr);
  assert.match(
    failed.stderr,
    /HcsCreateComputeSystem failed for "lc-create-fail-\w+": The parameter is incorrect \(0x80070057\)/,
  );
  assert.match(
    failed.stderr,
    /HCS event: VirtualMachine\.ComputeTopology: no room here/,
  );
  await assertNothingLeft(failed, sync);

  assert.equal(failedLater.code, 125, failedLater.stderr);
  assert.match(failedLater.stderr, /HCS event: the worker process died/);
  assert.equal(failedLater.trace.systemHandlesOpened, 1);
  await assertNothingLeft(failedLater, async);
});

Deno.test("a create that never completes times out, is terminated and closed", async () => {
  const id = testId("create-hang");
  const began = Date.now();
  const result = await run([...SHARED, "-id", id, "true"], {
    env: { HCS_SIM: "create.no_completion=1", VMRUNNER_TIMEOUT_CREATE: "1" },
  });
  assert.equal(result.code, 125, result.stderr);
  assert.ok(Date.now() - began < 15_000, "the 1 s timeout was used");
  assert.match(
    result.stderr,
    /HcsCreateComputeSystem failed for "lc-create-hang-\w+": HCS did not report SystemCreateCompleted within 1 s/,
  );
  assert.match(result.stderr, /VMRUNNER_TIMEOUT_CREATE=<seconds>/);
  // The system HCS did make is ended, not just forgotten.
  assert.equal(calls(result, "HcsTerminateComputeSystem").length, 1);
  await assertNothingLeft(result, id);
});

Deno.test("a start that fails or never completes ends the VM and says why", async () => {
  const failing = testId("start-fail");
  const hanging = testId("start-hang");
  const [failed, hung] = await Promise.all([
    run([...SHARED, "-id", failing, "true"], {
      env: {
        HCS_SIM: "start.fail_async=0xC0370100;" +
          "start.message=The hypervisor is not running",
      },
    }),
    run([...SHARED, "-id", hanging, "true"], {
      env: { HCS_SIM: "start.no_completion=1", VMRUNNER_TIMEOUT_START: "2" },
    }),
  ]);
  assert.equal(failed.code, 125, failed.stderr);
  assert.match(
    failed.stderr,
    /HcsStartComputeSystem failed for "lc-start-fail-\w+": The compute system exited unexpectedly while starting \(0xC0370100\)/,
  );
  assert.match(failed.stderr, /HCS event: The hypervisor is not running/);
  await assertNothingLeft(failed, failing);

  assert.equal(hung.code, 125, hung.stderr);
  assert.match(
    hung.stderr,
    /HcsStartComputeSystem failed for "lc-start-hang-\w+": HCS did not report SystemStartCompleted within 2 s/,
  );
  assert.match(hung.stderr, /VMRUNNER_TIMEOUT_START=<seconds>/);
  // The start did happen (QEMU ran): the VM is terminated.
  assert.equal(calls(hung, "HcsTerminateComputeSystem").length, 1);
  await assertNothingLeft(hung, hanging);
});

Deno.test("the VM dying, or HCS going away, mid-command ends the run with 125", async () => {
  const dying = testId("die");
  const lost = testId("disconnect");
  // Both hit 30 s after start or create, long after the guest's shell
  // came up (7 to 15 s here with two at once, on a busy host).
  const [died, disconnected] = await Promise.all([
    run([...SHARED, "-id", dying, ...LONG_COMMAND], {
      env: { HCS_SIM: "die_after=30000" },
    }),
    run([...SHARED, "-id", lost, ...LONG_COMMAND], {
      env: { HCS_SIM: "disconnect_after=30000" },
    }),
  ]);
  assert.equal(text(died.stdout), "started\n", "it died mid-command");
  assert.equal(died.code, 125, died.stderr);
  assert.match(
    died.stderr,
    /The VM lc-die-\w+ exited unexpectedly \(0xC0370106\); its last console lines may say why/,
  );
  assert.match(died.stderr, /Last console lines:/);
  await assertNothingLeft(died, dying);

  assert.equal(text(disconnected.stdout), "started\n");
  assert.equal(disconnected.code, 125, disconnected.stderr);
  assert.match(
    disconnected.stderr,
    /Lost the connection to the Host Compute Service while using lc-disconnect-\w+/,
  );
  assert.match(disconnected.stderr, /vmcompute service is running/);
  await assertNothingLeft(disconnected, lost);
});

Deno.test("a console pipe that never appears fails in the time given, saying what to check", async () => {
  const id = testId("no-pipe");
  const began = Date.now();
  const result = await run([...SHARED, "-id", id, "true"], {
    env: { HCS_SIM: "no_com=1", VMRUNNER_TIMEOUT_CONSOLE: "2" },
  });
  assert.ok(Date.now() - began < 15_000, "the 2 s timeout was used");
  assert.equal(result.code, 126, result.stderr);
  assert.match(
    result.stderr,
    /The console pipe \\\\\.\\pipe\\lc-no-pipe-\w+-console of lc-no-pipe-\w+ did not appear within 2 s/,
  );
  assert.match(result.stderr, /VirtualMachine\.Devices\.ComPorts/);
  assert.match(result.stderr, /-debug/);
  await assertNothingLeft(result, id);
});

Deno.test("an id in use is refused with the vmrunner kill command that frees it", async () => {
  const id = testId("exists");
  const result = await run([...SHARED, "-id", id, "true"], {
    env: { HCS_SIM: "exists=1" },
  });
  assert.equal(result.code, 125, result.stderr);
  assert.match(result.stderr, /A compute system with that id already exists/);
  assert.match(result.stderr, new RegExp(`vmrunner kill ${id}`));
  await assertNothingLeft(result, id);
});

Deno.test("a graceful shutdown that fails or hangs is followed by termination", async () => {
  // Read-only VMs are terminated at once; these two shut down first.
  const disks = [await diskCopy(), await diskCopy()];
  const refused = testId("shutdown-fail");
  const ignored = testId("shutdown-ignore");
  try {
    const began = Date.now();
    const [failed, hung] = await Promise.all([
      run([
        "--image-dir",
        IMAGE_DIR,
        "--rootfs",
        disks[0],
        "-id",
        refused,
        "true",
      ], {
        env: { HCS_SIM: "shutdown.fail=0x80004005" },
      }),
      run([
        "--image-dir",
        IMAGE_DIR,
        "--rootfs",
        disks[1],
        "-id",
        ignored,
        "true",
      ], {
        env: { HCS_SIM: "shutdown.ignore=1", VMRUNNER_TIMEOUT_SHUTDOWN: "2" },
      }),
    ]);
    for (const [result, id] of [[failed, refused], [hung, ignored]] as const) {
      assert.equal(result.code, 0, `${id}: ${result.stderr}`);
      assert.equal(result.stderr, "", "the command's status, quietly");
      const stops = result.trace.calls
        .filter((call) =>
          /^Hcs(Shutdown|Terminate)ComputeSystem$/.test(call.call)
        )
        .map((call) => `${call.call} ${call.hr}`);
      assert.deepEqual(stops, [
        `HcsShutdownComputeSystem ${
          id === refused ? "0x80004005" : "0xC0370103"
        }`,
        "HcsTerminateComputeSystem 0xC0370103",
      ]);
      await assertNothingLeft(result, id);
    }
    assert.ok(Date.now() - began < 60_000, "the 2 s shutdown timeout held");
  } finally {
    for (const disk of disks) await Deno.remove(disk);
  }
});

Deno.test("not elevated: access denied says to run as Administrator or join Hyper-V Administrators", async () => {
  const id = testId("denied");
  const result = await run([...SHARED, "-id", id, "true"], {
    env: { HCS_SIM: "create.fail=0x80070005" },
  });
  assert.equal(result.code, 125, result.stderr);
  assert.match(result.stderr, /Access is denied \(0x80070005\)/);
  assert.match(result.stderr, /Run vmrunner as Administrator/);
  assert.match(result.stderr, /"Hyper-V Administrators" group/);
  await assertNothingLeft(result, id);
});

Deno.test("no vmcompute library: said first, before any other check, exit 125", async () => {
  for (const args of [["--kernel", "/nonexistent/vmlinuz", "true"], ["list"]]) {
    const result = await run([...SHARED, ...args], {
      env: { LD_LIBRARY_PATH: "/nonexistent" },
    });
    assert.equal(result.code, 125, result.stderr);
    assert.match(
      result.stderr,
      /^vmrunner: error: LoadLibrary failed: Cannot load libvmcompute\.so: vmrunner drives the Windows Host Compute Service/,
    );
    assert.doesNotMatch(result.stderr, /kernel/, "the library comes first");
    assert.equal(result.trace.calls.length, 0);
  }
});

Deno.test("bad input is refused before any VM is made, naming what is wrong", async (t) => {
  const unreadable = await Deno.makeTempFile({ prefix: "vmrunner-kernel-" });
  await Deno.writeTextFile(unreadable, "not a kernel");
  await Deno.chmod(unreadable, 0o000);
  const folder = await Deno.makeTempDir({ prefix: "vmrunner-image-" });
  try {
    const cases: [string, string[], RegExp][] = [
      ["memory zero", ["--memory", "0"], /--memory must be greater than zero/],
      // Errors name a flag as it was spelled.
      [
        "memory negative",
        ["-memory", "-5"],
        /-memory must be a whole number \(got "-5"\)/,
      ],
      [
        "memory not a number",
        ["--memory", "lots"],
        /--memory must be a whole number/,
      ],
      [
        "memory beyond the host",
        ["--memory", "99999999"],
        /more than this host's \d+ MB/,
      ],
      ["cpu zero", ["-cpu", "0"], /-cpu must be greater than zero/],
      ["cpu negative", ["--cpu", "-1"], /--cpu/],
      ["cpu not a number", ["--cpu", "two"], /--cpu must be a whole number/],
      [
        "cpu beyond the host",
        ["--cpu", "4096"],
        /more than this host's \d+ logical processors/,
      ],
      [
        "kernel missing",
        ["--kernel", "/nonexistent/vmlinuz"],
        /The kernel \/nonexistent\/vmlinuz does not exist \(given with --kernel\)/,
      ],
      [
        "initrd missing",
        ["--initrd", "/nonexistent/initrd"],
        /The initrd \/nonexistent\/initrd does not exist/,
      ],
      [
        "disk missing",
        ["--rootfs", "/nonexistent/rootfs.vhdx"],
        /The rootfs \/nonexistent\/rootfs\.vhdx does not exist/,
      ],
      [
        "image folder empty",
        ["--image-dir", folder],
        new RegExp(
          `The kernel ${folder}/vmlinuz does not exist \\(from the image folder; choose another with --image-dir`,
        ),
      ],
      [
        "disk a folder",
        ["--rootfs", folder],
        new RegExp(`The rootfs ${folder} is not a file`),
      ],
      ["id with a slash", ["-id", "a/b"], /letters, digits, '\.', '_' or '-'/],
      ["id with a backslash", ["-id", "a\\b"], /letters, digits/],
      ["id with a space", ["-id", "my vm"], /letters, digits/],
      ["id too long", ["-id", "x".repeat(65)], /1 to 64/],
      [
        "unknown flag",
        ["--bogus"],
        /unknown option '--bogus'\n\s+Usage: vmrunner \[options\]/,
      ],
      [
        "bad timeout variable",
        [],
        /VMRUNNER_TIMEOUT_START must be a number of seconds above zero, not "soon"/,
      ],
    ];
    const results = await Promise.all(
      cases.map(([name, args]) =>
        run(["--image-dir", IMAGE_DIR, ...args, "true"], {
          env: name === "bad timeout variable"
            ? { VMRUNNER_TIMEOUT_START: "soon" }
            : {},
        })
      ),
    );
    // Nothing to run: usage, not a VM that does nothing.
    cases.push([
      "no command",
      [],
      /Nothing to run: give a command \(vmrunner ls \/\) or -i for a shell\n\s+Usage:/,
    ]);
    results.push(await run(["--image-dir", IMAGE_DIR]));
    // Root reads any file: the check runs without the capabilities that
    // allow that, as an ordinary user would.
    cases.push([
      "kernel unreadable",
      ["--kernel", unreadable],
      new RegExp(
        `The kernel ${unreadable} cannot be read \\(permission denied\\)`,
      ),
    ]);
    results.push(
      await run(["--image-dir", IMAGE_DIR, "--kernel", unreadable, "true"], {
        prefix: [
          "setpriv",
          "--bounding-set",
          "-dac_override,-dac_read_search",
          "--",
        ],
      }),
    );
    for (const [i, [name, , message]] of cases.entries()) {
      await t.step(name, () => {
        const result = results[i];
        assert.equal(result.code, 2, result.stderr);
        assert.match(result.stderr, message);
        assert.equal(
          calls(result, "HcsCreateComputeSystem").length,
          0,
          "no VM was made",
        );
      });
    }
  } finally {
    await Deno.remove(unreadable);
    await Deno.remove(folder);
  }
});

Deno.test("list shows our VMs with their age, kill ends them, scoped to vmrunner's", async () => {
  const first = testId("listed");
  const second = testId("listed");
  const a = start([...SHARED, "-id", first, ...LONG_COMMAND]);
  const b = start([...SHARED, "-id", second, ...LONG_COMMAND]);
  // Another program's system, made and held here; never started.
  const foreign = testId("foreign");
  Deno.env.set("HCS_SIM_STATE_DIR", STATE_DIR);
  const other = await ComputeSystem.create(foreign, {
    Owner: "other-tool",
    SchemaVersion: { Major: 2, Minor: 1 },
    ShouldTerminateOnLastHandleClosed: true,
    VirtualMachine: {
      Chipset: {
        LinuxKernelDirect: {
          KernelFilePath: `${ROOT}tests/hcs-sim/build/stub-kernel.elf`,
        },
      },
      ComputeTopology: { Memory: { SizeInMB: 64 }, Processor: { Count: 1 } },
    },
  });
  try {
    await Promise.all([
      a.waitFor("stdout", /started/),
      b.waitFor("stdout", /started/),
    ]);

    // The id in use, by a real VM of another vmrunner.
    const duplicate = await run([...SHARED, "-id", first, "true"]);
    assert.equal(duplicate.code, 125, duplicate.stderr);
    assert.match(duplicate.stderr, /already exists \(0xC037010F\)/);
    assert.match(duplicate.stderr, new RegExp(`vmrunner kill ${first}\\b`));
    assert.deepEqual(duplicate.trace.leaks, []);

    const listed = await run(["list"]);
    assert.equal(listed.code, 0, listed.stderr);
    const rows = table(text(listed.stdout));
    assert.deepEqual(rows[0], ["ID", "STATE", "OWNER", "AGE"]);
    const mine = rows.filter((row) => row[0] === first || row[0] === second);
    assert.equal(mine.length, 2, text(listed.stdout));
    for (const [, state, owner, age] of mine) {
      assert.equal(state, "Running");
      assert.equal(owner, "vmrunner");
      // Running since before the guest's shell answered: seconds at least.
      assert.match(age, /^([1-9]\d*s|\d+m\d\ds)$/);
    }
    assert.ok(!rows.some((row) => row[0] === foreign), "ours only");
    const all = table(text((await run(["list", "--all"])).stdout));
    assert.deepEqual(all.find((row) => row[0] === foreign), [
      foreign,
      "Created",
      "other-tool",
      "-",
    ]);

    // Another program's VM is not ours to end, unless asked plainly.
    const refused = await run(["kill", foreign]);
    assert.equal(refused.code, 2);
    assert.match(
      refused.stderr,
      new RegExp(
        `${foreign} belongs to "other-tool", not vmrunner; .*` +
          `vmrunner kill --any-owner ${foreign}`,
      ),
    );
    assert.equal(calls(refused, "HcsTerminateComputeSystem").length, 0);

    const killed = await run(["kill", first]);
    assert.equal(killed.code, 0, killed.stderr);
    assert.match(killed.stderr, new RegExp(`killed ${first}`));
    const ended = await a.result();
    assert.equal(ended.code, 125, ended.stderr);
    assert.match(
      ended.stderr,
      new RegExp(`The VM ${first} was terminated by another program`),
    );
    await assertNothingLeft(ended, first);
    assert.ok(await registered(second), "the other one runs on");

    const killedAll = await run(["kill", "--all"]);
    assert.equal(killedAll.code, 0, killedAll.stderr);
    assert.match(killedAll.stderr, new RegExp(`killed ${second}`));
    const alsoEnded = await b.result();
    assert.equal(alsoEnded.code, 125, alsoEnded.stderr);
    await assertNothingLeft(alsoEnded, second);
    assert.equal(other.exit, undefined, "kill --all spared other-tool's");

    const forced = await run(["kill", "--any-owner", foreign]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.ok(await other.waitForExit({ timeoutMs: 10_000 }));
    await other.close();
    const none = await run(["list", "--all"]);
    assert.equal(text(none.stdout), "ID  STATE  OWNER  AGE\n");
    assert.deepEqual(none.trace.leaks, []);
  } finally {
    stop(a);
    stop(b);
    await Promise.allSettled([a.result(), b.result()]);
    await other.close();
    Deno.env.delete("HCS_SIM_STATE_DIR");
  }
  await assertVmGone(foreign);
});

Deno.test("four runs at once on one host all succeed, each with its own VM and pipe", async () => {
  const results = await Promise.all(
    [1, 2, 3, 4].map(() =>
      run([...SHARED, "cat", "/proc/sys/kernel/random/boot_id"])
    ),
  );
  const ids = new Set<string>();
  const pipes = new Set<string>();
  const boots = new Set<string>();
  for (const result of results) {
    assert.equal(result.code, 0, result.stderr);
    boots.add(text(result.stdout).trim());
    const [created] = calls(result, "HcsCreateComputeSystem");
    const id = String(created.args.id);
    ids.add(id);
    const document = JSON.parse(String(created.args.configuration));
    pipes.add(document.VirtualMachine.Devices.ComPorts["0"].NamedPipe);
    await assertNothingLeft(result, id);
  }
  assert.equal(ids.size, 4);
  assert.equal(pipes.size, 4);
  assert.equal(boots.size, 4, "four guests booted");
});

Deno.test("two runs on one writable disk: the second is told to use --read-only", async () => {
  const disk = await diskCopy();
  const holder = testId("writer");
  const second = testId("second-writer");
  const writer = start([
    "--image-dir",
    IMAGE_DIR,
    "--rootfs",
    disk,
    "-id",
    holder,
    ...LONG_COMMAND,
  ]);
  try {
    await writer.waitFor("stdout", /started/);
    const result = await run([
      "--image-dir",
      IMAGE_DIR,
      "--rootfs",
      disk,
      "-id",
      second,
      "true",
    ]);
    assert.equal(result.code, 125, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `HcsStartComputeSystem failed for "${second}": The root disk ${disk} ` +
          "is in use by another VM \\(0x80070020\\)",
      ),
    );
    assert.match(result.stderr, /run each VM with --read-only/);
    await assertNothingLeft(result, second);
  } finally {
    stop(writer);
    const ended = await writer.result();
    assert.equal(ended.code, 143, ended.stderr);
    await assertNothingLeft(ended, holder);
    await Deno.remove(disk);
  }
});
