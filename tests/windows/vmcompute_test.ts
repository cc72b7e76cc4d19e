/**
 * vmrunner's HCS binding on Windows, against the test bed's vmcompute.dll
 * (tests/hcs-sim) under Wine: the DLL found by name, UTF-16 strings both
 * ways, frees through ole32's CoTaskMemFree, FormatMessageW's words in
 * errors, notifications from HCS's own threads, and the console pipe in
 * both roles. The VMs boot the simulator's stub kernel, which QEMU starts
 * in milliseconds. Windows only: run by tests/wine/run.ts, which puts the
 * DLL's folder on the search path (WINEPATH).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { ComputeSystem } from "../../hcs/compute_system.ts";
import { HcsError } from "../../hcs/hcs_error.ts";
import { vmcompute } from "../../hcs/library.ts";
import { NOTIFICATION } from "../../hcs/notifications.ts";
import {
  defaultVmcomputePath,
  outPointer,
  takeWideString,
  wideString,
} from "../../hcs/vmcompute_ffi.ts";
import { connectConsole, serveConsole } from "../../console/connect.ts";
import { consolePipeName } from "../../console/pipe_name.ts";
import type { ConsoleTransport } from "../../console/transport.ts";
import { systemMessage } from "../../win32/kernel32_ffi.ts";

const isWindows = Deno.build.os === "windows";
const BUILD_DIR = join(import.meta.dirname!, "..", "hcs-sim", "build");
const STUB_KERNEL = join(BUILD_DIR, "stub-kernel.elf");

/** Test-only kernel32 functions, loaded once for the whole file. */
const k32 = isWindows
  ? Deno.dlopen("kernel32.dll", {
    // HMODULE GetModuleHandleW(LPCWSTR lpModuleName);
    GetModuleHandleW: { parameters: ["buffer"], result: "pointer" },
    // DWORD GetModuleFileNameW(HMODULE hModule, LPWSTR lpFilename,
    //   DWORD nSize);
    GetModuleFileNameW: {
      parameters: ["pointer", "buffer", "u32"],
      result: "u32",
    },
    // DWORD GetCurrentThreadId(void);
    GetCurrentThreadId: { parameters: [], result: "u32" },
  }).symbols
  : undefined;

/**
 * Whether a module named vmcompute.dll was loaded before this file ran: one
 * loaded by path would be reused for a load by name, whatever the search
 * path says, and prove nothing.
 */
const loadedEarlier = isWindows &&
  k32!.GetModuleHandleW(wideString("vmcompute.dll")) !== null;

/** Windows-only test; named so that a skip elsewhere says why. */
function windowsTest(name: string, fn: () => Promise<void> | void): void {
  Deno.test({ name: `${name} [windows only]`, ignore: !isWindows, fn });
}

const SIMULATOR_SYMBOLS = {
  // HRESULT HcsSimConfigure(PCWSTR spec);
  HcsSimConfigure: { parameters: ["buffer"], result: "i32" },
  // HRESULT HcsSimGetCounters(PWSTR* json);
  HcsSimGetCounters: { parameters: ["buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;
let simulatorLib:
  | Deno.DynamicLibrary<typeof SIMULATOR_SYMBOLS>
  | undefined;

/**
 * The simulator's own exports, from the module the product loaded (opened
 * by name after it, so never a second copy).
 */
function simulator() {
  vmcompute();
  simulatorLib ??= Deno.dlopen("vmcompute.dll", SIMULATOR_SYMBOLS);
  return simulatorLib.symbols;
}

/** HcsSimGetCounters: this process's counts of strings and handles. */
function counters(): Record<string, number | boolean> {
  const out = outPointer();
  assert.equal(simulator().HcsSimGetCounters(out), 0, "HcsSimGetCounters");
  // Freed like every string the library returns; this one is not counted.
  return JSON.parse(takeWideString(vmcompute(), out));
}

/** Runs `fn` with the simulator's fault switches set for this process. */
async function withSwitches(spec: string, fn: () => Promise<void>) {
  const sim = simulator();
  assert.equal(sim.HcsSimConfigure(wideString(spec)), 0, spec);
  try {
    await fn();
  } finally {
    sim.HcsSimConfigure(null);
  }
}

let serial = 0;
function uniqueId(label: string): string {
  return `vmrunner-win-${label}-${Deno.pid}-${++serial}`;
}

/** A document that boots the stub kernel, COM1 on `pipe`. */
function stubDocument(kernel: string, pipe: string, owner = "vmrunner-test") {
  return {
    Owner: owner,
    SchemaVersion: { Major: 2, Minor: 1 },
    ShouldTerminateOnLastHandleClosed: true,
    VirtualMachine: {
      StopOnReset: true,
      Chipset: { LinuxKernelDirect: { KernelFilePath: kernel } },
      ComputeTopology: {
        Memory: { SizeInMB: 64 },
        Processor: { Count: 1 },
      },
      Devices: { ComPorts: { "0": { NamedPipe: pipe } } },
    },
  };
}

/** Reads `transport` until the text read so far matches `pattern`. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  pattern: RegExp,
  timeoutMs = 10_000,
): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no ${pattern} within ${timeoutMs} ms: ${text}`)),
      timeoutMs,
    );
  });
  try {
    while (!pattern.test(text)) {
      const { value, done } = await Promise.race([reader.read(), timeout]);
      if (done) throw new Error(`the console ended before ${pattern}: ${text}`);
      text += decoder.decode(value, { stream: true });
    }
    return text;
  } finally {
    clearTimeout(timer);
  }
}

/** Stops and closes `system`, then closes `transport`. */
async function tearDown(system: ComputeSystem, transport?: ConsoleTransport) {
  await system.stop({ shutdownMs: 0 }).catch(() => {});
  await system.close();
  await transport?.close();
}

// The DLL by name --------------------------------------------------------------

windowsTest(
  "vmcompute.dll is loaded by name, from the DLL search path",
  () => {
    assert.equal(defaultVmcomputePath(), "vmcompute.dll");
    assert.equal(loadedEarlier, false, "nothing loaded it by path first");
    const name = wideString("vmcompute.dll");
    const lib = vmcompute();
    assert.equal(lib.path, "vmcompute.dll");
    const module = k32!.GetModuleHandleW(name);
    assert.notEqual(module, null, "loaded under its name");
    const buffer = new Uint16Array(1024);
    const length = k32!.GetModuleFileNameW(module, buffer, buffer.length);
    const file = String.fromCharCode(...buffer.subarray(0, length));
    assert.equal(
      file.toLowerCase(),
      join(BUILD_DIR, "vmcompute.dll").toLowerCase(),
      "the test bed's build, found through WINEPATH",
    );
  },
);

// UTF-16 -------------------------------------------------------------------------

windowsTest(
  "ids, documents, paths and pipe names cross as UTF-16 both ways",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "vmrunner-ünï-世界-" });
    let system: ComputeSystem | undefined;
    let transport: ConsoleTransport | undefined;
    try {
      const kernel = join(dir, "stub kernel 😀.elf");
      await Deno.copyFile(STUB_KERNEL, kernel);
      const id = uniqueId("ütf16-世界-😀");
      const owner = "vmrunner-tëst-✓-𝄞";
      const pipe = consolePipeName(id);
      system = await ComputeSystem.create(
        id,
        stubDocument(kernel, pipe, owner),
      );
      await system.start();
      // Out: the id and owner come back as they went in.
      const [listed] = await ComputeSystem.enumerate({ Ids: [id] });
      assert.equal(listed?.id, id);
      assert.equal(listed?.owner, owner);
      // The pipe the VM made under its non-ASCII name, and the kernel
      // found at its non-ASCII path, answer.
      transport = await connectConsole(pipe, { timeoutMs: 10_000 });
      const reader = transport.readable.getReader();
      await transport.writable.getWriter().write(
        new TextEncoder().encode("é"),
      );
      assert.match(await readUntil(reader, /é/), /é/);
      reader.releaseLock();

      // A failure's result document names the file, in words and bytes
      // that survived the trip.
      const missing = join(dir, "nö-such-kërnel-世界.elf");
      await assert.rejects(
        ComputeSystem.create(uniqueId("missing"), stubDocument(missing, pipe)),
        (error: Error) => {
          assert.ok(error instanceof HcsError, String(error));
          assert.ok(error.message.includes(missing), error.message);
          return true;
        },
      );
    } finally {
      if (system) await tearDown(system, transport);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

// CoTaskMemFree ------------------------------------------------------------------

windowsTest(
  "every string vmcompute returns is freed with ole32's CoTaskMemFree",
  async () => {
    const before = counters();
    assert.equal(before.FreesObserved, true, "the simulator sees ole32 frees");
    // A failing call returns a result document; a listing returns a list.
    await assert.rejects(ComputeSystem.open(uniqueId("absent")), HcsError);
    await ComputeSystem.enumerate({ Ids: [uniqueId("absent")] });
    const after = counters();
    const allocated = Number(after.ResultsAllocated) -
      Number(before.ResultsAllocated);
    const freed = Number(after.ResultsFreed) - Number(before.ResultsFreed);
    assert.ok(allocated >= 2, `strings returned: ${allocated}`);
    assert.equal(freed, allocated, "each one freed, through ole32");
  },
);

// FormatMessageW -------------------------------------------------------------------

windowsTest(
  "an HRESULT outside HCS's table is described in the system's words",
  async () => {
    vmcompute(); // loading it installs the system's message lookup
    const code = 0x80070070; // ERROR_DISK_FULL, not in our own table
    const words = systemMessage(code)?.replace(/\.$/, "");
    assert.ok(words, "FormatMessageW knows the code");
    await withSwitches(`open.fail=${code}`, async () => {
      await assert.rejects(
        ComputeSystem.open(uniqueId("diskfull")),
        (error: Error) => {
          assert.ok(error instanceof HcsError, String(error));
          assert.ok(
            error.message.includes(`${words} (0x80070070)`),
            error.message,
          );
          assert.doesNotMatch(error.message, /Unknown error/);
          return true;
        },
      );
    });
  },
);

// Callbacks on HCS's threads -----------------------------------------------------

windowsTest(
  "notifications come on a thread of HCS's, and reach the JavaScript thread",
  async () => {
    const trace = await Deno.makeTempFile({ suffix: ".jsonl" });
    const jsThread = k32!.GetCurrentThreadId();
    const id = uniqueId("threads");
    Deno.env.set("HCS_SIM_TRACE", trace);
    let system: ComputeSystem | undefined;
    try {
      system = await ComputeSystem.create(
        id,
        stubDocument(STUB_KERNEL, consolePipeName(id)),
      );
      await system.start();
      await system.terminate();
      await system.close();
    } finally {
      Deno.env.delete("HCS_SIM_TRACE");
      if (system && !system.closed) await tearDown(system);
    }
    const types = system.notifications.map((n) => n.type);
    assert.deepEqual(types, [
      NOTIFICATION.SystemCreateCompleted,
      NOTIFICATION.SystemStartCompleted,
      NOTIFICATION.SystemExited,
    ]);
    const lines = (await Deno.readTextFile(trace)).trim().split("\n")
      .map((line) => JSON.parse(line))
      .filter((line) => line.pid === Deno.pid);
    await Deno.remove(trace);
    const callThreads = new Set(
      lines.filter((line) => line.call).map((line) => line.tid),
    );
    const notifyThreads = new Set(
      lines.filter((line) => line.event === "notify").map((line) => line.tid),
    );
    assert.equal(notifyThreads.size, 1, "one dispatcher thread");
    const [notifier] = notifyThreads;
    assert.notEqual(notifier, jsThread, "not the JavaScript thread");
    assert.ok(!callThreads.has(notifier), "not a thread that made a call");
    assert.ok(!callThreads.has(jsThread), "every call left the JS thread");
  },
);

// The console pipe in both roles -----------------------------------------------

windowsTest(
  "the VM serves the pipe and vmrunner connects as its client",
  async () => {
    const id = uniqueId("client");
    const pipe = consolePipeName(id);
    const system = await ComputeSystem.create(
      id,
      stubDocument(STUB_KERNEL, pipe),
    );
    let transport: ConsoleTransport | undefined;
    try {
      await system.start();
      transport = await connectConsole(pipe, { timeoutMs: 10_000 });
      const reader = transport.readable.getReader();
      const writer = transport.writable.getWriter();
      await writer.write(new TextEncoder().encode("ping"));
      assert.match(await readUntil(reader, /ping/), /ping/);
      // 'q' resets the stub: the VM ends, and with it its pipe.
      await writer.write(new TextEncoder().encode("q"));
      assert.equal((await system.waitForExit())?.unexpected, false);
      reader.releaseLock();
      writer.releaseLock();
    } finally {
      await tearDown(system, transport);
    }
  },
);

windowsTest(
  "vmrunner serves the pipe first and the VM connects to it, from its first byte",
  async () => {
    const id = uniqueId("server");
    const pipe = consolePipeName(id);
    const server = await serveConsole(pipe);
    let system: ComputeSystem | undefined;
    try {
      system = await ComputeSystem.create(id, stubDocument(STUB_KERNEL, pipe));
      await system.start();
      const transport = await server.accepted;
      const reader = transport.readable.getReader();
      // Served before the VM started, the pipe sees the boot's first line,
      // which a client connecting after the start misses.
      await readUntil(reader, /hcs-sim stub ready\r\n\$ /);
      const writer = transport.writable.getWriter();
      await writer.write(new TextEncoder().encode("pong"));
      assert.match(await readUntil(reader, /pong/), /pong/);
      await writer.write(new TextEncoder().encode("q"));
      assert.equal((await system.waitForExit())?.unexpected, false);
      // The VM connected once; its end ends our side too.
      assert.equal((await reader.read()).done, true);
      writer.releaseLock();
    } finally {
      if (system) await tearDown(system);
      await server.close();
    }
  },
);
