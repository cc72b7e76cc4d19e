/**
 * The boot baseline: the least a program must do to get a shell in the VM.
 * It creates and starts the VM through the HCS library with the raw FFI
 * table, connects to the console socket, probes until the shell answers,
 * and terminates the VM. No other vmrunner module is used.
 *
 * Usage (what the bench runs, as a process of its own, like vmrunner):
 *
 * ```sh
 * deno run <vmrunner's permissions> bench/raw_client.ts IMAGE_DIR ID
 * ```
 *
 * It prints one JSON line of timestamps (`Date.now()` values) on stdout.
 *
 * @module
 */

import {
  NOTIFICATION_CALLBACK,
  openVmcompute,
  outPointer,
  pointerFrom,
  takeWideString,
  wideString,
} from "../hcs/vmcompute_ffi.ts";
import { connectRaw, consoleSocketPath } from "./raw_console.ts";

/** What the VM is: the same as `vmrunner --read-only` boots by default. */
export interface RawVmSettings {
  kernel: string;
  initrd: string;
  rootfs: string;
  id: string;
}

/**
 * The HCS document, written out by hand. The smoke test checks that it
 * equals what vmrunner sends for the same settings, so both sides of the
 * comparison boot the same VM.
 */
export function rawDocument(settings: RawVmSettings): Record<string, unknown> {
  return {
    Owner: "vmrunner",
    SchemaVersion: { Major: 2, Minor: 1 },
    ShouldTerminateOnLastHandleClosed: true,
    VirtualMachine: {
      StopOnReset: true,
      Chipset: {
        LinuxKernelDirect: {
          KernelFilePath: settings.kernel,
          InitRdPath: settings.initrd,
          KernelCmdLine: "console=ttyS0 root=/dev/sda ro init=/sbin/init",
        },
      },
      ComputeTopology: {
        Memory: { SizeInMB: 1024 },
        Processor: { Count: 2 },
      },
      Devices: {
        Scsi: {
          "0": {
            Attachments: {
              "0": {
                Type: "VirtualDisk",
                Path: settings.rootfs,
                ReadOnly: true,
              },
            },
          },
        },
        ComPorts: { "0": { NamedPipe: `\\\\.\\pipe\\${settings.id}-console` } },
      },
    },
  };
}

/** When each step of {@linkcode bootToShell} ended, from `Date.now()`. */
export interface RawBootTimes {
  created: number;
  started: number;
  connected: number;
  shell: number;
  terminated: number;
}

const PENDING = 0xC0370103;
const CREATE_COMPLETED = 2;
const START_COMPLETED = 3;
const SYSTEM_EXITED = 1;
/** How often the shell is asked to answer while it has not yet. */
const PROBE_MS = 200;
/** When to give up on the shell, as vmrunner does by default. */
const SHELL_TIMEOUT_MS = 120_000;

/** Boots the VM, waits for its shell, and terminates it. */
export async function bootToShell(
  settings: RawVmSettings,
): Promise<RawBootTimes> {
  const lib = openVmcompute();
  const hcs = lib.symbols;
  // Notifications arrive on the simulator's thread; keep the latest of
  // each type, and wake whoever waits for it.
  const seen = new Map<number, number>();
  const waiting = new Map<number, () => void>();
  const callback = Deno.UnsafeCallback.threadSafe(
    NOTIFICATION_CALLBACK,
    (type, _context, status) => {
      seen.set(type, status);
      waiting.get(type)?.();
    },
  );
  const notified = (type: number) =>
    new Promise<number>((resolve) => {
      if (seen.has(type)) return resolve(seen.get(type)!);
      waiting.set(type, () => resolve(seen.get(type)!));
    });
  const check = (what: string, hr: number) => {
    if (hr !== 0 && hr >>> 0 !== PENDING) {
      throw new Error(`${what} failed: 0x${(hr >>> 0).toString(16)}`);
    }
  };

  const times: Partial<RawBootTimes> = {};
  const handleOut = outPointer();
  const resultOut = outPointer();
  const document = JSON.stringify(rawDocument(settings));
  let hr = await hcs.HcsCreateComputeSystem(
    wideString(settings.id),
    wideString(document),
    null,
    handleOut,
    resultOut,
  );
  takeWideString(lib, resultOut);
  check("HcsCreateComputeSystem", hr);
  const handle = pointerFrom(handleOut);
  const callbackOut = outPointer();
  check(
    "HcsRegisterComputeSystemCallback",
    await hcs.HcsRegisterComputeSystemCallback(
      handle,
      callback.pointer,
      null,
      callbackOut,
    ),
  );
  if (hr >>> 0 === PENDING) await notified(CREATE_COMPLETED);
  times.created = Date.now();

  // Connect while the VM starts: QEMU drops what nobody reads.
  const connecting = connectRaw(consoleSocketPath(settings.id));
  hr = await hcs.HcsStartComputeSystem(handle, wideString(""), resultOut);
  takeWideString(lib, resultOut);
  check("HcsStartComputeSystem", hr);
  if (hr >>> 0 === PENDING) {
    const status = await notified(START_COMPLETED);
    check("StartCompleted", status);
  }
  times.started = Date.now();
  const serial = await connecting;
  times.connected = Date.now();

  // The reply differs from the probe's echo, so only the shell makes it.
  // A backslash rather than quotes: the guest's UART drops what its FIFO
  // holds when the port is opened, and a probe cut after an opening quote
  // would leave the shell waiting for the closing one.
  const reply = serial.until("VMRRDY");
  let answered = false;
  reply.then(() => (answered = true), () => {});
  const deadline = Date.now() + SHELL_TIMEOUT_MS;
  while (!answered && Date.now() < deadline) {
    await serial.write("echo VMR\\RDY\r");
    await Promise.race([
      reply,
      new Promise((resolve) => setTimeout(resolve, PROBE_MS)),
    ]);
  }
  const shell = answered ? Date.now() : undefined;

  hr = await hcs.HcsTerminateComputeSystem(handle, wideString(""), resultOut);
  takeWideString(lib, resultOut);
  check("HcsTerminateComputeSystem", hr);
  await notified(SYSTEM_EXITED);
  times.terminated = Date.now();
  await serial.close();
  await hcs.HcsUnregisterComputeSystemCallback(pointerFrom(callbackOut));
  await hcs.HcsCloseComputeSystem(handle);
  callback.close();
  lib.close();
  if (shell === undefined) {
    throw new Error(`No shell answered within ${SHELL_TIMEOUT_MS / 1000} s`);
  }
  times.shell = shell;
  return times as RawBootTimes;
}

if (import.meta.main) {
  const [imageDir, id] = Deno.args;
  if (!imageDir || !id) {
    console.error("Usage: raw_client.ts IMAGE_DIR ID");
    Deno.exit(2);
  }
  const times = await bootToShell({
    kernel: `${imageDir}/vmlinuz`,
    initrd: `${imageDir}/initrd`,
    rootfs: `${imageDir}/rootfs.vhdx`,
    id,
  });
  console.log(JSON.stringify(times));
}
