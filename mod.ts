/**
 * vmrunner as a library: boot a throwaway Linux VM through the Windows Host
 * Compute Service (`vmcompute.dll`), run commands in it over its serial
 * console, and tear it down however your program ends.
 *
 * Boot once, run many commands, and let `await using` stop the VM:
 *
 * ```ts ignore
 * import { Machine } from "@vmrunner/vmrunner";
 *
 * await using vm = await Machine.boot({
 *   imageDir: "C:\\vmrunner\\vm-image", // vmlinuz, initrd, rootfs.vhdx
 *   memoryMb: 2048,
 *   cpus: 2,
 * });
 * const { status, output } = await vm.run(["uname", "-a"]);
 * console.log(status, new TextDecoder().decode(output));
 *
 * // Stream output as it comes, and pass input:
 * await vm.run(["sh", "-c", "tr a-z A-Z"], {
 *   input: ReadableStream.from([new TextEncoder().encode("hello\n")]),
 *   output: (bytes) => Deno.stdout.writeSync(bytes),
 * });
 * ```
 *
 * Needs `--allow-ffi` and `--allow-read` (for the image files). Failures
 * of HCS are {@linkcode HcsError}s carrying the operation, the VM's id, the
 * HRESULT and HCS's error events; a console without a usable shell is a
 * {@linkcode ConsoleError}.
 *
 * @module
 */

export {
  type CommandIO,
  type CommandResult,
  DEFAULT_CMDLINE,
  DEFAULT_CPUS,
  DEFAULT_MEMORY_MB,
  Machine,
  MachineExitedError,
  type MachineOptions,
  OWNER,
  uniqueId,
} from "./vm/machine.ts";
export { ImageError, type ImageFiles, resolveImage } from "./vm/image.ts";
export type { ImageChoice } from "./vm/image.ts";
export {
  ComputeSystem,
  type ComputeSystemSummary,
  type HcsOptions,
  type SystemExit,
} from "./hcs/compute_system.ts";
export { HcsProcess, type ProcessParameters } from "./hcs/process.ts";
export {
  HcsError,
  type HcsErrorEvent,
  type HcsErrorInit,
} from "./hcs/hcs_error.ts";
export { HRESULT, hresultText } from "./hcs/hresult.ts";
export { DEFAULT_TIMEOUTS, type HcsTimeouts } from "./hcs/timeouts.ts";
export {
  type ComputeSystemDocument,
  type ScsiAttachment,
  vmDocument,
  type VmDocumentSettings,
} from "./hcs/document.ts";
export {
  ConsoleChannel,
  type ConsoleChannelOptions,
  type ConsoleListener,
} from "./console/channel.ts";
export type { ConsoleTransport } from "./console/transport.ts";
export {
  type RunOptions,
  ShellSession,
  type ShellSessionOptions,
} from "./console/shell_session.ts";
export {
  type ProcessInformation,
  type Vmcompute,
  VMCOMPUTE_SYMBOLS,
  type VmcomputeSymbols,
} from "./hcs/vmcompute_ffi.ts";
export type { Notification } from "./hcs/notifications.ts";
export {
  ConsoleError,
  type Credentials,
  INTERRUPTED_STATUS,
} from "./console/shell_session.ts";
