/**
 * Tests of the vmcompute.dll simulator through the product's FFI binding:
 * every behaviour of README.md has a test here that fails without it.
 *
 * Most tests boot the stub kernel (build/stub-kernel.elf: QEMU starts it in
 * milliseconds); the first boots the real image from vm-image/. Run with
 * `deno test -A tests/hcs-sim/sim_test.ts` after `deno task sim`.
 *
 * The same file runs with the Windows Deno under Wine against
 * vmcompute.dll: consoles are then real named pipes (kernel32), and /proc is
 * Z:\proc. Two tests are Linux-only: the disk test (it runs qemu-img) and
 * the process test (its stdio handles are file descriptors there; the
 * Windows pipes need overlapped I/O, left to the Wine harness).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  close,
  configure,
  Console,
  ConsoleServer,
  counters,
  create,
  enumerate,
  eventually,
  hcs,
  HR,
  imageBuilt,
  imageDoc,
  IS_WINDOWS,
  lib,
  NOTIFY,
  open,
  operate,
  pipeSocket,
  processesMentioning,
  properties,
  Recorder,
  SIM_DIR,
  TestVm,
  u32,
  uniqueId,
  vmDoc,
} from "./helpers.ts";
import {
  decodeProcessInformation,
  outPointer,
  pointerFrom,
  PROCESS_INFORMATION_SIZE,
  takeWideString,
  wideString,
} from "../../hcs/vmcompute_ffi.ts";
import { summarizeTrace } from "./trace.ts";

// Our own state directory: other suites' VMs stay out of our enumerations,
// and subprocesses inherit it.
const STATE_DIR = Deno.makeTempDirSync({ prefix: "hcs-sim-state-" });
Deno.env.set("HCS_SIM_STATE_DIR", STATE_DIR);
globalThis.addEventListener("unload", () => {
  Deno.removeSync(STATE_DIR, { recursive: true });
});
const linuxOnly = { ignore: IS_WINDOWS };

/** Runs fn with HCS_SIM switches set for this process only. */
async function withSwitches<T>(spec: string, fn: () => Promise<T>) {
  assert.equal(configure(spec), HR.S_OK);
  try {
    return await fn();
  } finally {
    configure(null);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test({
  name: "the real image boots through libvmcompute.so: COM1 shows a shell " +
    "prompt, the guest has the document's memory and CPUs, and Shutdown " +
    "ends with a clean SystemExited",
  ignore: !imageBuilt(),
  async fn() {
    const id = uniqueId("image");
    const doc = imageDoc(id, { memoryMb: 300, cpus: 2 });
    const created = await create(id, doc);
    assert.equal(created.hr, HR.PENDING);
    const recorder = new Recorder();
    let console_: Console | undefined;
    try {
      await recorder.register(created.handle);
      await recorder.next(NOTIFY.CreateCompleted);
      assert.equal(
        (await operate("HcsStartComputeSystem", created.handle)).hr,
        HR.PENDING,
      );
      assert.equal((await recorder.next(NOTIFY.StartCompleted)).status, 0);
      console_ = await Console.connect(id);
      // Boot output before we connected is gone; Enter asks for a prompt.
      await console_.write("\n");
      await console_.until(/root@vm:[^\r\n]*# /, 60_000);
      await console_.write(
        "grep MemTotal /proc/meminfo; echo cpus=$(nproc); echo do''ne\n",
      );
      const out = await console_.until(/done\r?\n/);
      const kb = Number(/MemTotal:\s+(\d+) kB/.exec(out)?.[1]);
      // The kernel keeps some for itself: well above QEMU's default 128 MB.
      assert.ok(kb > 200 * 1024 && kb <= 300 * 1024, `MemTotal ${kb} kB`);
      assert.match(out, /cpus=2\r?\n/);

      // Shutdown is accepted, then the guest powers off by itself.
      assert.equal(
        (await operate("HcsShutdownComputeSystem", created.handle)).hr,
        HR.PENDING,
      );
      const exited = await recorder.next(NOTIFY.SystemExited, 30_000);
      assert.equal(exited.status, 0);
      assert.equal(JSON.parse(exited.data).ExitType, "GracefulExit");
    } finally {
      console_?.close();
      await operate("HcsTerminateComputeSystem", created.handle);
      await recorder.unregister();
      await close(created.handle);
      recorder.close();
    }
  },
});

Deno.test("operations return pending and complete through the callback, on a thread of the simulator", async () => {
  const trace = await Deno.makeTempFile({ suffix: ".jsonl" });
  Deno.env.set("HCS_SIM_TRACE", trace);
  const id = uniqueId("async");
  const created = await create(id, vmDoc(id));
  const recorder = new Recorder();
  try {
    assert.equal(created.hr, HR.PENDING);
    assert.notEqual(created.handle, null, "the handle is valid while pending");
    // CreateCompleted happened before anyone could register: it is held
    // for the callback, not lost.
    await sleep(300);
    await recorder.register(created.handle);
    assert.equal((await recorder.next(NOTIFY.CreateCompleted)).status, 0);

    const steps = [
      ["HcsStartComputeSystem", NOTIFY.StartCompleted, "Running"],
      ["HcsPauseComputeSystem", NOTIFY.PauseCompleted, "Paused"],
      ["HcsResumeComputeSystem", NOTIFY.ResumeCompleted, "Running"],
    ] as const;
    for (const [op, type, state] of steps) {
      assert.equal((await operate(op, created.handle)).hr, HR.PENDING, op);
      assert.equal((await recorder.next(type)).status, 0, op);
      const p = await properties(created.handle);
      assert.equal(p.properties.State, state);
    }
    assert.equal(
      (await operate("HcsTerminateComputeSystem", created.handle)).hr,
      HR.PENDING,
    );
    const exited = await recorder.next(NOTIFY.SystemExited);
    assert.equal(exited.status, 0);
    assert.equal(JSON.parse(exited.data).ExitType, "ForcedExit");
    assert.deepEqual(
      recorder.events.map((e) => e.type),
      [2, 3, 4, 5, 1],
    );
    // Every notification came from one thread that made no API call.
    Deno.env.delete("HCS_SIM_TRACE");
    const lines = (await Deno.readTextFile(trace)).trim().split("\n").map((
      l,
    ) => JSON.parse(l));
    const callThreads = new Set(lines.filter((l) => l.call).map((l) => l.tid));
    const notifyThreads = new Set(
      lines.filter((l) => l.event === "notify").map((l) => l.tid),
    );
    assert.equal(notifyThreads.size, 1);
    assert.ok(!callThreads.has([...notifyThreads][0]));
  } finally {
    Deno.env.delete("HCS_SIM_TRACE");
    await operate("HcsTerminateComputeSystem", created.handle);
    await recorder.unregister();
    await close(created.handle);
    recorder.close();
    await Deno.remove(trace);
  }
});

Deno.test("sync=1 completes operations before they return, with no completion notification; SystemExited still comes", async () => {
  await withSwitches("sync=1", async () => {
    const id = uniqueId("sync");
    const created = await create(id, vmDoc(id));
    assert.equal(created.hr, HR.S_OK);
    const recorder = new Recorder();
    try {
      await recorder.register(created.handle);
      assert.equal(
        (await operate("HcsStartComputeSystem", created.handle)).hr,
        0,
      );
      assert.equal(
        (await properties(created.handle)).properties.State,
        "Running",
      );
      assert.equal(
        (await operate("HcsPauseComputeSystem", created.handle)).hr,
        0,
      );
      assert.equal(
        (await properties(created.handle)).properties.State,
        "Paused",
      );
      assert.equal(
        (await operate("HcsResumeComputeSystem", created.handle)).hr,
        0,
      );
      assert.equal(
        (await operate("HcsTerminateComputeSystem", created.handle)).hr,
        0,
      );
      // Synchronous terminate returns once the VM is gone.
      assert.equal(
        (await properties(created.handle)).properties.State,
        "Stopped",
      );
      await recorder.next(NOTIFY.SystemExited);
      assert.deepEqual(recorder.events.map((e) => e.type), [
        NOTIFY.SystemExited,
      ]);
    } finally {
      await recorder.unregister();
      await close(created.handle);
      recorder.close();
    }
  });
});

Deno.test("a non-NULL identity is refused with E_INVALIDARG and an error event", async () => {
  const id = uniqueId("identity");
  const token = Deno.UnsafePointer.create(0x1234n);
  const created = await create(id, vmDoc(id), token);
  assert.equal(created.hr, HR.E_INVALIDARG);
  assert.equal(created.handle, null);
  assert.equal(u32(created.result.Error), HR.E_INVALIDARG);
  assert.equal(typeof created.result.ErrorMessage, "string");
  assert.match(created.result.ErrorEvents[0].Message, /identity/);
  assert.equal(created.result.ErrorEvents[0].Source, "HcsCreateComputeSystem");
  assert.equal(
    (await enumerate(JSON.stringify({ Ids: [id] }))).systems.length,
    0,
  );
});

Deno.test("result strings are counted when freed with CoTaskMemFree; the counters' own string is not", async () => {
  const before = counters();
  const again = counters();
  assert.equal(again.ResultsAllocated, before.ResultsAllocated);
  assert.equal(again.ResultsFreed, before.ResultsFreed);

  // A failing call allocates a result document...
  const result = outPointer(), handle = outPointer();
  await hcs.HcsOpenComputeSystem(wideString(uniqueId("none")), handle, result);
  const pointer = pointerFrom(result);
  assert.notEqual(pointer, null);
  const mid = counters();
  assert.equal(mid.ResultsAllocated, (before.ResultsAllocated as number) + 1);
  assert.equal(mid.ResultsFreed, before.ResultsFreed);
  // ... that counts as freed once the caller frees it.
  lib.coTaskMemFree(pointer);
  const after = counters();
  assert.equal(after.ResultsFreed, (before.ResultsFreed as number) + 1);
  assert.equal(after.FreesObserved, true);
  if (!IS_WINDOWS) {
    // Freeing twice is the caller's bug: counted, not a crash.
    lib.coTaskMemFree(pointer);
    assert.equal(counters().BadFrees, (before.BadFrees as number) + 1);
  }
});

Deno.test("unregistering waits for a queued callback: declared synchronous it deadlocks the JavaScript thread, nonblocking it returns", async () => {
  const script = join(SIM_DIR, "fixtures", "unregister_deadlock.ts");
  const run = async (mode: string) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, mode],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, 5000);
    const out = await child.output();
    clearTimeout(timer);
    return { ...out, killed, text: new TextDecoder().decode(out.stdout) };
  };
  const [sync, nonblocking] = await Promise.all([
    run("sync"),
    run("nonblocking"),
  ]);
  assert.ok(sync.killed, "the synchronous unregister never returns");
  assert.doesNotMatch(sync.text, /unregistered/);
  assert.ok(!nonblocking.killed);
  assert.equal(
    nonblocking.code,
    0,
    new TextDecoder().decode(nonblocking.stderr),
  );
  assert.match(nonblocking.text, /callback ran\nunregistered/);
});

Deno.test("invalid documents fail with ERROR_VMCOMPUTE_INVALID_JSON naming the field", async () => {
  const id = uniqueId("json");
  const good = vmDoc(id);
  // deno-lint-ignore no-explicit-any -- documents are edited freely here
  const edit = (f: (d: any) => void) => {
    const d = structuredClone(good);
    f(d);
    return d;
  };
  const cases: [unknown, RegExp][] = [
    ['{"SchemaVersion": {"Major": 2,', /not JSON: line 1, column \d+/],
    [
      edit((d) => delete d.SchemaVersion),
      /SchemaVersion: required field missing/,
    ],
    [
      edit((d) =>
        delete d.VirtualMachine.Chipset.LinuxKernelDirect.KernelFilePath
      ),
      /VirtualMachine\.Chipset\.LinuxKernelDirect\.KernelFilePath: required/,
    ],
    [
      edit((d) => d.VirtualMachine.ComputeTopology.Memory.SizeInMB = "64"),
      /VirtualMachine\.ComputeTopology\.Memory\.SizeInMB: expected a number, found a string/,
    ],
    [
      edit((d) => d.VirtualMachine.ComputeTopology.Processor.Count = 1.5),
      /VirtualMachine\.ComputeTopology\.Processor\.Count: expected an integer/,
    ],
    [
      edit((d) => d.VirtualMachine = []),
      /VirtualMachine: expected an object, found an array/,
    ],
    [
      edit((d) => d.ShouldTerminateOnLastHandleClosed = "yes"),
      /ShouldTerminateOnLastHandleClosed: expected a boolean/,
    ],
    [
      edit((d) =>
        d.VirtualMachine.Devices.Scsi = {
          "0": { Attachments: { "0": { Type: "VirtualDisk" } } },
        }
      ),
      /VirtualMachine\.Devices\.Scsi\.0\.Attachments\.0\.Path: required/,
    ],
    [
      edit((d) => d.VirtualMachine.Devices.ComPorts["0"].NamedPipe = "COM1"),
      /VirtualMachine\.Devices\.ComPorts\.0\.NamedPipe: "COM1" is not a local pipe name/,
    ],
  ];
  for (const [doc, message] of cases) {
    const created = await create(id, doc);
    assert.equal(created.hr, HR.INVALID_JSON, JSON.stringify(created.result));
    assert.equal(created.handle, null);
    assert.match(created.result.ErrorEvents[0].Message, message);
  }
});

Deno.test("a missing kernel, initrd or disk fails with the path named", async () => {
  const id = uniqueId("files");
  const missing = join(SIM_DIR, "no-such-file");
  for (
    const o of [{ kernel: missing }, { initrd: missing }, {
      disks: [{ path: missing }],
    }]
  ) {
    const created = await create(id, vmDoc(id, o));
    assert.equal(created.hr, HR.FILE_NOT_FOUND);
    assert.ok(created.result.ErrorEvents[0].Message.includes(missing));
  }
});

Deno.test({
  name:
    "SCSI disks reach QEMU as VHDX, read-only when asked; a second writer of a VHDX fails to start with a sharing violation",
  ...linuxOnly,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "hcs-sim-disk-" });
    const disk = join(dir, "data.vhdx");
    const made = await new Deno.Command("qemu-img", {
      args: ["create", "-q", "-f", "vhdx", disk, "16M"],
    }).output();
    assert.equal(made.code, 0);
    try {
      await using writer = await TestVm.create("disk-rw", {
        disks: [{ path: disk }],
        start: true,
      });
      await using reader = await TestVm.create("disk-ro", {
        disks: [{
          path: join(SIM_DIR, "build", "stub-kernel.elf"),
          readOnly: true,
        }],
        start: true,
      });
      const qemuOf = (id: string) =>
        processesMentioning(`hcs-sim:${id}`).find((p) =>
          p.args.startsWith("qemu")
        )!.args;
      const writerArgs = qemuOf(writer.id);
      assert.ok(
        writerArgs.includes(
          `-drive file=${disk},format=vhdx,if=none,id=disk0_0 `,
        ),
        writerArgs,
      );
      assert.match(writerArgs, / -device scsi-hd,bus=scsi0\.0,/);
      assert.match(qemuOf(reader.id), /,readonly=on /);

      await using second = await TestVm.create("disk-rw2", {
        disks: [{ path: disk }],
      });
      assert.equal(
        (await operate("HcsStartComputeSystem", second.handle)).hr,
        HR.PENDING,
      );
      const done = await second.recorder.next(NOTIFY.StartCompleted);
      assert.equal(done.status, HR.SHARING_VIOLATION);
      const message = JSON.parse(done.data).ErrorEvents[0].Message;
      assert.match(message, /lock/);
      assert.ok(message.includes(disk));
      assert.equal(await second.state(), "Created");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test(
  "COM1 is the document's named pipe (on Linux /tmp/hcs-pipe/NAME): served by the VM, which drops output nobody reads, or a client of the caller's server",
  async () => {
    // The VM serves, and starts without waiting for a client (wait=off):
    // what it prints before one connects is gone. SeaBIOS and the stub
    // print their banner well within the second we give them.
    {
      await using vm = await TestVm.create("com-server", { start: true });
      await sleep(1000);
      const console_ = await Console.connect(vm.id);
      await console_.write("ping");
      const seen = await console_.until(/ping/, 5000);
      assert.doesNotMatch(seen, /stub ready/);
      if (!IS_WINDOWS) {
        assert.ok((await Deno.lstat(pipeSocket(vm.id))).isSocket);
      }
      // Pause really stops the guest (QMP stop): no echo until Resume.
      await operate("HcsPauseComputeSystem", vm.handle);
      await vm.recorder.next(NOTIFY.PauseCompleted);
      await console_.write("zzz");
      await assert.rejects(console_.until(/zzz/, 500));
      await operate("HcsResumeComputeSystem", vm.handle);
      await vm.recorder.next(NOTIFY.ResumeCompleted);
      await console_.until(/zzz/, 5000);
      console_.close();
    }

    // The caller serves first: the VM connects to it when it starts, early
    // enough to see everything.
    const id = uniqueId("com-client");
    const server = new ConsoleServer(id);
    const created = await create(id, vmDoc(id));
    const recorder = new Recorder();
    try {
      await recorder.register(created.handle);
      await operate("HcsStartComputeSystem", created.handle);
      const console_ = await server.accept();
      try {
        await console_.until(/hcs-sim stub ready\r\n\$ /, 5000);
        await console_.write("pong");
        await console_.until(/pong/, 5000);
      } finally {
        console_.close();
      }
    } finally {
      server.close();
      await operate("HcsTerminateComputeSystem", created.handle);
      await recorder.unregister();
      await close(created.handle);
      recorder.close();
    }
  },
);

Deno.test({
  name:
    "compute systems are visible across processes: a VM outlives its creator, and another process enumerates, opens and terminates it",
  async fn() {
    const id = uniqueId("cross");
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(SIM_DIR, "fixtures", "creator.ts"),
        id,
        "outlive",
      ],
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    try {
      const all = await enumerate("{}");
      const entry = all.systems.find((s) => s.Id === id);
      assert.ok(entry, `${id} missing from ${JSON.stringify(all.systems)}`);
      assert.equal(entry.State, "Running");
      assert.equal(entry.Owner, `creator-${id}`);
      assert.equal(entry.SystemType, "VirtualMachine");
      assert.match(
        entry.RuntimeId as string,
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
      // Filters.
      assert.deepEqual(
        (await enumerate(JSON.stringify({ Ids: [id] }))).systems.map((s) =>
          s.Id
        ),
        [id],
      );
      assert.deepEqual(
        (await enumerate(JSON.stringify({ Owners: [`creator-${id}`] }))).systems
          .map((s) => s.Id),
        [id],
      );
      assert.deepEqual(
        (await enumerate(JSON.stringify({ Owners: ["nobody"] }))).systems,
        [],
      );
    } finally {
      const opened = await open(id);
      assert.equal(opened.hr, HR.S_OK, JSON.stringify(opened.result));
      const recorder = new Recorder();
      await recorder.register(opened.handle);
      assert.equal((await properties(opened.handle)).properties.Id, id);
      assert.equal(
        (await operate("HcsTerminateComputeSystem", opened.handle)).hr,
        HR.PENDING,
      );
      assert.equal((await recorder.next(NOTIFY.SystemExited)).status, 0);
      await recorder.unregister();
      await close(opened.handle);
      recorder.close();
    }
    // The last handle is gone and the VM stopped: so is the system.
    assert.ok(
      await eventually(async () => (await open(id)).hr === HR.SYSTEM_NOT_FOUND),
    );
    assert.ok(await eventually(() => processesMentioning(id).length === 0));
  },
});

Deno.test("a state entry whose supervisor is gone is ignored and removed", async () => {
  const id = uniqueId("stale");
  // What a supervisor killed with SIGKILL leaves: its file, nobody on the port.
  const file = join(STATE_DIR, `${id}.json`);
  await Deno.writeTextFile(
    file,
    JSON.stringify({
      Id: id,
      Owner: "gone",
      RuntimeId: crypto.randomUUID(),
      SystemType: "VirtualMachine",
      Port: 9, // discard: nothing listens there
      Pid: 999999,
    }),
  );
  assert.deepEqual(
    (await enumerate(JSON.stringify({ Ids: [id] }))).systems,
    [],
  );
  await assert.rejects(Deno.stat(file), Deno.errors.NotFound);
  await Deno.writeTextFile(file, "{}");
  assert.equal((await open(id)).hr, HR.SYSTEM_NOT_FOUND);
  // A new system may take the id.
  const created = await create(id, vmDoc(id));
  assert.equal(created.hr, HR.PENDING);
  await close(created.handle);
});

Deno.test({
  name:
    "ShouldTerminateOnLastHandleClosed ends the VM when the last handle in any process closes, also when the creator is killed",
  async fn() {
    // In this process: two handles, the VM lives until both are closed.
    await withSwitches("", async () => {
      const id = uniqueId("last-handle");
      const created = await create(id, vmDoc(id, { terminateOnClose: true }));
      const recorder = new Recorder();
      await recorder.register(created.handle);
      await operate("HcsStartComputeSystem", created.handle);
      await recorder.next(NOTIFY.StartCompleted);
      const second = await open(id);
      await recorder.unregister();
      await close(created.handle);
      recorder.close();
      await sleep(300);
      assert.equal(
        (await properties(second.handle)).properties.State,
        "Running",
      );
      await close(second.handle);
      assert.ok(await eventually(() => processesMentioning(id).length === 0));
      assert.equal((await open(id)).hr, HR.SYSTEM_NOT_FOUND);
    });

    // A creator killed with SIGKILL takes its VM along.
    const id = uniqueId("sigkill");
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(SIM_DIR, "fixtures", "creator.ts"), id, "hold"],
      stdout: "piped",
    }).spawn();
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    assert.match(new TextDecoder().decode(value), /ready/);
    assert.ok(processesMentioning(`hcs-sim:${id}`).length > 0, "QEMU runs");
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel();
    assert.ok(
      await eventually(() => processesMentioning(id).length === 0),
      "no QEMU or supervisor left",
    );
    assert.equal(
      (await enumerate(JSON.stringify({ Ids: [id] }))).systems.length,
      0,
    );
  },
});

Deno.test("fault switches: failing calls, failing completions, dropped and delayed completions", async (t) => {
  await t.step(
    "<op>.fail returns the HRESULT with the given message",
    async () => {
      await withSwitches(
        "start.fail=0x80370100;start.message=no start today",
        async () => {
          await using vm = await TestVm.create("fail");
          const started = await operate("HcsStartComputeSystem", vm.handle);
          assert.equal(started.hr, 0x80370100);
          assert.equal(started.result.ErrorEvents[0].Message, "no start today");
          assert.equal(await vm.state(), "Created");
        },
      );
    },
  );
  await t.step(
    "<op>.fail_async returns pending, then the completion fails",
    async () => {
      await withSwitches("start.fail_async=0xC0370100", async () => {
        await using vm = await TestVm.create("fail-async");
        assert.equal(
          (await operate("HcsStartComputeSystem", vm.handle)).hr,
          HR.PENDING,
        );
        const done = await vm.recorder.next(NOTIFY.StartCompleted);
        assert.equal(done.status, 0xc0370100);
        assert.equal(u32(JSON.parse(done.data).Error), 0xc0370100);
        assert.equal(await vm.state(), "Created");
      });
      // A create that fails later: a valid handle, and no system behind it.
      await withSwitches("create.fail_async=0x80370102", async () => {
        const id = uniqueId("create-fail-async");
        const created = await create(id, vmDoc(id));
        assert.equal(created.hr, HR.PENDING);
        const recorder = new Recorder();
        try {
          await recorder.register(created.handle);
          const done = await recorder.next(NOTIFY.CreateCompleted);
          assert.equal(done.status, 0x80370102);
          assert.equal(
            (await properties(created.handle)).hr,
            HR.SYSTEM_NOT_FOUND,
          );
        } finally {
          await recorder.unregister();
          assert.equal(await close(created.handle), 0);
          recorder.close();
        }
      });
    },
  );
  await t.step(
    "<op>.no_completion: the operation happens, its notification never comes",
    async () => {
      await withSwitches("start.no_completion=1", async () => {
        await using vm = await TestVm.create("no-completion");
        assert.equal(
          (await operate("HcsStartComputeSystem", vm.handle)).hr,
          HR.PENDING,
        );
        assert.equal(
          await vm.recorder.arrives(NOTIFY.StartCompleted, 800),
          false,
        );
        assert.equal(await vm.state(), "Running");
      });
    },
  );
  await t.step("<op>.delay holds the completion back", async () => {
    await withSwitches("create.delay=500", async () => {
      const id = uniqueId("delay");
      const before = performance.now();
      const created = await create(id, vmDoc(id));
      const recorder = new Recorder();
      try {
        await recorder.register(created.handle);
        const done = await recorder.next(NOTIFY.CreateCompleted);
        assert.ok(done.at - before >= 480, `after ${done.at - before} ms`);
      } finally {
        await recorder.unregister();
        await close(created.handle);
        recorder.close();
      }
    });
  });
  await t.step(
    "die_after: the VM dies on its own with SystemExited 0xC0370106",
    async () => {
      await withSwitches("die_after=300", async () => {
        await using vm = await TestVm.create("die", { start: true });
        const exited = await vm.recorder.next(NOTIFY.SystemExited, 5000);
        assert.equal(exited.status, HR.UNEXPECTED_EXIT);
        assert.equal(JSON.parse(exited.data).ExitType, "UnexpectedExit");
        assert.equal(await vm.state(), "Stopped");
      });
    },
  );
  await t.step(
    "a clean exit from inside the guest gives SystemExited 0",
    async () => {
      await using vm = await TestVm.create("guest-exit", { start: true });
      const console_ = await Console.connect(vm.id);
      await console_.write("q"); // the stub resets; StopOnReset ends the VM
      // Leaving at once: the byte must still reach the guest (under Wine
      // the pipe server then finds its client already gone).
      console_.close();
      const exited = await vm.recorder.next(NOTIFY.SystemExited, 5000);
      assert.equal(exited.status, 0);
      assert.equal(JSON.parse(exited.data).ExitType, "GracefulExit");
    },
  );
  await t.step(
    "disconnect_after: ServiceDisconnect, then the handle is dead",
    async () => {
      await withSwitches("disconnect_after=200", async () => {
        await using vm = await TestVm.create("disconnect", { start: true });
        const gone = await vm.recorder.next(NOTIFY.ServiceDisconnect, 5000);
        assert.equal(gone.type, 0x01000000);
        assert.equal(
          (await properties(vm.handle)).hr,
          HR.RPC_SERVER_UNAVAILABLE,
        );
        // It was this VM's only handle, and the document says to end it then.
        if (!IS_WINDOWS) {
          assert.ok(
            await eventually(() => processesMentioning(vm.id).length === 0),
          );
        }
      });
    },
  );
  await t.step(
    "exists=1, and a real duplicate id: SYSTEM_ALREADY_EXISTS",
    async () => {
      await withSwitches("exists=1", async () => {
        const id = uniqueId("exists");
        const created = await create(id, vmDoc(id));
        assert.equal(created.hr, HR.ALREADY_EXISTS);
        assert.match(created.result.ErrorEvents[0].Message, /already exists/);
      });
      await using vm = await TestVm.create("duplicate");
      const again = await create(vm.id, vmDoc(vm.id));
      assert.equal(again.hr, HR.ALREADY_EXISTS);
      assert.equal(again.handle, null);
    },
  );
  await t.step(
    "shutdown.ignore: accepted, but the VM keeps running",
    async () => {
      await withSwitches("shutdown.ignore=1", async () => {
        await using vm = await TestVm.create("ignore", { start: true });
        assert.equal(
          (await operate("HcsShutdownComputeSystem", vm.handle)).hr,
          HR.PENDING,
        );
        assert.equal(
          await vm.recorder.arrives(NOTIFY.SystemExited, 500),
          false,
        );
        assert.equal(await vm.state(), "Running");
      });
    },
  );
  await t.step(
    "terminate.no_completion: the VM goes, SystemExited never comes",
    async () => {
      await withSwitches("terminate.no_completion=1", async () => {
        await using vm = await TestVm.create("silent", { start: true });
        assert.equal(
          (await operate("HcsTerminateComputeSystem", vm.handle)).hr,
          HR.PENDING,
        );
        assert.equal(
          await vm.recorder.arrives(NOTIFY.SystemExited, 500),
          false,
        );
        assert.equal(await vm.state(), "Stopped");
        assert.equal(
          (await operate("HcsTerminateComputeSystem", vm.handle)).hr,
          HR.ALREADY_STOPPED,
        );
      });
    },
  );
  await t.step("an invalid switch fails every call and says why", async () => {
    assert.equal(configure("start.explode=1"), HR.E_INVALIDARG);
    Deno.env.set("HCS_SIM", "start.explode=1");
    try {
      const listed = await enumerate();
      assert.equal(listed.hr, HR.E_INVALIDARG);
      assert.match(
        listed.result.ErrorEvents[0].Message,
        /HCS_SIM: unknown switch 'start.explode'/,
      );
    } finally {
      Deno.env.delete("HCS_SIM");
    }
  });
  await t.step(
    "HCS_SIM is read again at every call; HcsSimConfigure overrides it",
    async () => {
      const id = uniqueId("env");
      assert.equal((await open(id)).hr, HR.SYSTEM_NOT_FOUND);
      Deno.env.set("HCS_SIM", "open.fail=0x80070005");
      try {
        assert.equal((await open(id)).hr, 0x80070005);
        configure("");
        assert.equal((await open(id)).hr, HR.SYSTEM_NOT_FOUND);
        configure(null);
        assert.equal((await open(id)).hr, 0x80070005);
      } finally {
        configure(null);
        Deno.env.delete("HCS_SIM");
      }
      assert.equal((await open(id)).hr, HR.SYSTEM_NOT_FOUND);
    },
  );
});

/** libc's read/write/close, for the stdio handles (file descriptors). */
const libc = IS_WINDOWS ? null : Deno.dlopen("libc.so.6", {
  read: {
    parameters: ["i32", "buffer", "usize"],
    result: "isize",
    nonblocking: true,
  },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
});
const fd = (h: Deno.PointerValue) => Number(Deno.UnsafePointer.value(h));

async function readFd(
  handle: Deno.PointerValue,
  until: RegExp,
): Promise<string> {
  let text = "";
  const buf = new Uint8Array(256);
  while (!until.test(text)) {
    const n = Number(
      await libc!.symbols.read(fd(handle), buf, BigInt(buf.length)),
    );
    if (n <= 0) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  return text;
}

async function createProcess(system: Deno.PointerValue, params: unknown) {
  const info = new Uint8Array(PROCESS_INFORMATION_SIZE),
    process = outPointer(),
    result = outPointer();
  const hr = u32(
    await hcs.HcsCreateProcess(
      system,
      wideString(JSON.stringify(params)),
      info,
      process,
      result,
    ),
  );
  const text = takeWideString(lib, result);
  return {
    hr,
    result: text ? JSON.parse(text) : "",
    info: decodeProcessInformation(info),
    process: pointerFrom(process),
  };
}

async function processStatus(process: Deno.PointerValue) {
  const props = outPointer(), result = outPointer();
  const hr = u32(await hcs.HcsGetProcessProperties(process, props, result));
  takeWideString(lib, result);
  return { hr, ...JSON.parse(takeWideString(lib, props)) };
}

Deno.test({
  name:
    "HcsCreateProcess: no stdio handles without an agent; failures on demand; a scripted process with pipes, ProcessExited and an exit code",
  ...linuxOnly,
  async fn() {
    await using vm = await TestVm.create("process", { start: true });
    const params = {
      CommandArgs: ["echo", "hi"],
      CreateStdInPipe: true,
      CreateStdOutPipe: true,
      CreateStdErrPipe: true,
    };

    // Without an agent, as the seed saw: success and no handles.
    const plain = await createProcess(vm.handle, params);
    assert.equal(plain.hr, HR.S_OK);
    assert.ok(plain.info.processId > 0);
    assert.deepEqual(
      [plain.info.stdInput, plain.info.stdOutput, plain.info.stdError],
      [null, null, null],
    );
    const recorder = new Recorder();
    await recorder.register(plain.process, true);
    assert.equal((await processStatus(plain.process)).Exited, false);
    assert.equal(
      u32(await hcs.HcsTerminateProcess(plain.process, outPointer())),
      0,
    );
    assert.equal((await recorder.next(NOTIFY.ProcessExited)).status, 0);
    assert.deepEqual(await processStatus(plain.process), {
      hr: 0,
      ProcessId: plain.info.processId,
      Exited: true,
      ExitCode: 137,
      LastWaitResult: 0,
    });
    const again = outPointer();
    assert.equal(
      u32(await hcs.HcsTerminateProcess(plain.process, again)),
      HR.PROCESS_ALREADY_STOPPED,
    );
    takeWideString(lib, again);
    await recorder.unregister(true);
    recorder.close();
    assert.equal(u32(await hcs.HcsCloseProcess(plain.process)), 0);

    await withSwitches("create_process.fail=0x80370108", async () => {
      const failed = await createProcess(vm.handle, params);
      assert.equal(failed.hr, 0x80370108);
      assert.equal(failed.process, null);
    });

    await withSwitches("process=agent;process.exit_code=7", async () => {
      const agent = await createProcess(vm.handle, params);
      assert.equal(agent.hr, HR.S_OK);
      const { stdInput, stdOutput, stdError } = agent.info;
      assert.ok(stdInput && stdOutput && stdError);
      const exits = new Recorder();
      await exits.register(agent.process, true);
      assert.match(
        await readFd(stdOutput, /\n/),
        /hcs-sim: process \d+: echo hi\n/,
      );
      assert.match(await readFd(stdError, /\n/), /stderr/);
      libc!.symbols.write(fd(stdInput), new TextEncoder().encode("ping\n"), 5n);
      assert.equal(await readFd(stdOutput, /\n/), "ping\n");
      libc!.symbols.close(fd(stdInput)); // end of stdin: the script exits
      assert.equal(await readFd(stdOutput, /$^/), "", "stdout ends");
      await exits.next(NOTIFY.ProcessExited);
      const status = await processStatus(agent.process);
      assert.equal(status.Exited, true);
      assert.equal(status.ExitCode, 7);
      libc!.symbols.close(fd(stdOutput));
      libc!.symbols.close(fd(stdError));
      await exits.unregister(true);
      exits.close();
      assert.equal(u32(await hcs.HcsCloseProcess(agent.process)), 0);
    });
  },
});

Deno.test("service properties give the host's processors; unsupported calls fail with a documented HRESULT and a result document", async () => {
  const props = outPointer(), result = outPointer();
  const hr = u32(
    await hcs.HcsGetServiceProperties!(
      wideString('{"PropertyTypes":["ProcessorTopology"]}'),
      props,
      result,
    ),
  );
  assert.equal(hr, 0);
  takeWideString(lib, result);
  const topology = JSON.parse(takeWideString(lib, props)).Properties[0];
  assert.equal(
    topology.TotalLogicalProcessorCount,
    navigator.hardwareConcurrency,
  );
  assert.equal(
    topology.LogicalProcessors.length,
    navigator.hardwareConcurrency,
  );

  await using vm = await TestVm.create("unsupported");
  for (
    const op of ["HcsSaveComputeSystem", "HcsModifyComputeSystem"] as const
  ) {
    const out = await operate(op, vm.handle, "{}");
    assert.equal(out.hr, HR.NOT_SUPPORTED, op);
    assert.equal(out.result.ErrorEvents[0].Source, op);
  }
  const stale = await operate(
    "HcsStartComputeSystem",
    Deno.UnsafePointer.create(8n),
  );
  assert.equal(stale.hr, HR.INVALID_HANDLE);
});

Deno.test("the Statistics property tells when a VM started and how long it has run", async () => {
  const query = '{"PropertyTypes":["Statistics"]}';
  await using vm = await TestVm.create("statistics");
  const created = (await properties(vm.handle, query)).properties;
  const before = created.Statistics as Record<string, unknown>;
  assert.equal(before.Uptime100ns, 0, "not started: no uptime");
  assert.equal(before.ContainerStartTime, undefined);
  assert.ok(Date.parse(before.Timestamp as string) > 0);
  assert.equal(
    (await properties(vm.handle)).properties.Statistics,
    undefined,
    "only when asked for",
  );

  const started = await operate("HcsStartComputeSystem", vm.handle);
  assert.equal(started.hr, HR.PENDING);
  await vm.recorder.next(NOTIFY.StartCompleted);
  const startedAt = Date.now();
  await sleep(300);
  const running = (await properties(vm.handle, query)).properties
    .Statistics as Record<string, unknown>;
  const uptimeMs = (running.Uptime100ns as number) / 10_000;
  assert.ok(uptimeMs >= 250 && uptimeMs < 5_000, `uptime ${uptimeMs} ms`);
  const start = Date.parse(running.ContainerStartTime as string);
  assert.ok(
    Math.abs(start - startedAt) < 2_000,
    String(running.ContainerStartTime),
  );
  assert.ok(Date.parse(running.Timestamp as string) >= start);
});

Deno.test({
  name: "no_com=1: the VM runs without its COM ports, so no pipe appears",
  // The pipe is looked for as its Unix socket.
  ignore: IS_WINDOWS,
  fn: async () => {
    await withSwitches("no_com=1", async () => {
      await using vm = await TestVm.create("no-com", { start: true });
      assert.equal(await vm.state(), "Running");
      await sleep(300);
      assert.equal(
        await Deno.stat(pipeSocket(vm.id)).then(() => true, () => false),
        false,
      );
    });
  },
});

Deno.test("counters and the trace file account for every handle, callback and result string", async () => {
  const trace = await Deno.makeTempFile({ suffix: ".jsonl" });
  Deno.env.set("HCS_SIM_TRACE", trace);
  const before = counters();
  try {
    {
      await using vm = await TestVm.create("counters", { start: true });
      assert.equal(counters().VmsRunning, (before.VmsRunning as number) + 1);
      // Fails at once, with a result document the helper frees.
      assert.equal(
        (await operate("HcsSaveComputeSystem", vm.handle)).hr,
        HR.NOT_SUPPORTED,
      );
    }
    assert.ok(
      await eventually(() => counters().VmsRunning === before.VmsRunning),
    );
    const after = counters();
    const delta = (k: string) => (after[k] as number) - (before[k] as number);
    assert.equal(delta("SystemHandlesOpened"), 1);
    assert.equal(delta("SystemHandlesClosed"), 1);
    assert.equal(delta("CallbacksRegistered"), 1);
    assert.equal(delta("CallbacksUnregistered"), 1);
    assert.equal(delta("ResultsAllocated"), 1);
    assert.equal(delta("ResultsFreed"), 1);
  } finally {
    Deno.env.delete("HCS_SIM_TRACE");
  }
  const summary = await summarizeTrace(trace);
  await Deno.remove(trace);
  assert.deepEqual(summary.leaks, []);
  assert.equal(summary.systemHandlesOpened, 1);
  assert.equal(summary.resultsAllocated, 1);
  const save = summary.calls.find((c) => c.call === "HcsSaveComputeSystem");
  assert.equal(save?.hr, "0x80070032", "the call is traced with its HRESULT");
  assert.ok(save.args.computeSystem);
  assert.match(save.message!, /not simulated/);
  assert.deepEqual(
    summary.calls.map((c) => c.call).filter((c) => !c.startsWith("HcsSim")),
    [
      "HcsCreateComputeSystem",
      "HcsRegisterComputeSystemCallback",
      "HcsStartComputeSystem",
      "HcsSaveComputeSystem",
      "HcsTerminateComputeSystem",
      "HcsUnregisterComputeSystemCallback",
      "HcsCloseComputeSystem",
    ],
  );
});

Deno.test({
  name: "no QEMU or supervisor of these tests is left running",
  async fn() {
    assert.ok(
      await eventually(() => processesMentioning("hcs-sim-test-").length === 0),
      `left: ${processesMentioning("hcs-sim-test-")}`,
    );
    // Stale state entries are cleaned by the next enumeration.
    assert.deepEqual((await enumerate()).systems, []);
  },
});
