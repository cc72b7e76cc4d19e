/**
 * The raw binding of the classic Host Compute Service API in `vmcompute.dll`.
 *
 * One symbol table, with each export's C prototype beside it, and the few
 * helpers every call needs: UTF-16 strings in and out, out-parameters, and
 * freeing what the library allocated. Nothing here knows what a compute
 * system is; `compute_system.ts` gives the calls their meaning.
 *
 * Every HCS export is declared `nonblocking`: HCS may call our notification
 * callback from its own threads, and a callback blocks its thread until the
 * JavaScript thread runs it, so a call that waits for those threads
 * (unregistering, closing, a synchronously completing start) would deadlock
 * if it held the JavaScript thread. It also lets a caller give up on a call
 * that hangs in the service.
 *
 * @module
 */

/** `PCWSTR`: a NUL-terminated UTF-16LE string, passed as a buffer. */
const PCWSTR = "buffer";
/** `PWSTR*`, `HCS_SYSTEM*`, ...: an 8-byte out-parameter. */
const OUT = "buffer";
/** `HCS_SYSTEM`, `HCS_PROCESS`, `HCS_CALLBACK`, `HANDLE`, `void*`. */
const HANDLE = "pointer";
/** `HRESULT`. */
const HRESULT = "i32";

/** The symbols of `vmcompute.dll`, in the order of HCS.md section 1. */
export const VMCOMPUTE_SYMBOLS = {
  // HRESULT HcsEnumerateComputeSystems(PCWSTR query,
  //   PWSTR* computeSystems, PWSTR* result);
  HcsEnumerateComputeSystems: {
    parameters: [PCWSTR, OUT, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsCreateComputeSystem(PCWSTR id, PCWSTR configuration,
  //   HANDLE identity, HCS_SYSTEM* computeSystem, PWSTR* result);
  HcsCreateComputeSystem: {
    parameters: [PCWSTR, PCWSTR, HANDLE, OUT, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsOpenComputeSystem(PCWSTR id, HCS_SYSTEM* computeSystem,
  //   PWSTR* result);
  HcsOpenComputeSystem: {
    parameters: [PCWSTR, OUT, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsCloseComputeSystem(HCS_SYSTEM computeSystem);
  HcsCloseComputeSystem: {
    parameters: [HANDLE],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsStartComputeSystem(HCS_SYSTEM computeSystem, PCWSTR options,
  //   PWSTR* result);
  HcsStartComputeSystem: {
    parameters: [HANDLE, PCWSTR, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsShutdownComputeSystem(HCS_SYSTEM computeSystem,
  //   PCWSTR options, PWSTR* result);
  HcsShutdownComputeSystem: {
    parameters: [HANDLE, PCWSTR, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsTerminateComputeSystem(HCS_SYSTEM computeSystem,
  //   PCWSTR options, PWSTR* result);
  HcsTerminateComputeSystem: {
    parameters: [HANDLE, PCWSTR, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsPauseComputeSystem(HCS_SYSTEM computeSystem, PCWSTR options,
  //   PWSTR* result);
  HcsPauseComputeSystem: {
    parameters: [HANDLE, PCWSTR, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsResumeComputeSystem(HCS_SYSTEM computeSystem, PCWSTR options,
  //   PWSTR* result);
  HcsResumeComputeSystem: {
    parameters: [HANDLE, PCWSTR, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsSaveComputeSystem(HCS_SYSTEM computeSystem, PCWSTR options,
  //   PWSTR* result);
  HcsSaveComputeSystem: {
    parameters: [HANDLE, PCWSTR, OUT],
    result: HRESULT,
    nonblocking: true,
    optional: true,
  },
  // HRESULT HcsGetComputeSystemProperties(HCS_SYSTEM computeSystem,
  //   PCWSTR propertyQuery, PWSTR* properties, PWSTR* result);
  HcsGetComputeSystemProperties: {
    parameters: [HANDLE, PCWSTR, OUT, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsModifyComputeSystem(HCS_SYSTEM computeSystem,
  //   PCWSTR configuration, PWSTR* result);
  HcsModifyComputeSystem: {
    parameters: [HANDLE, PCWSTR, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsModifyServiceSettings(PCWSTR settings, PWSTR* result);
  HcsModifyServiceSettings: {
    parameters: [PCWSTR, OUT],
    result: HRESULT,
    nonblocking: true,
    optional: true,
  },
  // HRESULT HcsRegisterComputeSystemCallback(HCS_SYSTEM computeSystem,
  //   HCS_NOTIFICATION_CALLBACK callback, void* context,
  //   HCS_CALLBACK* callbackHandle);
  HcsRegisterComputeSystemCallback: {
    parameters: [HANDLE, "function", HANDLE, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsUnregisterComputeSystemCallback(HCS_CALLBACK callbackHandle);
  HcsUnregisterComputeSystemCallback: {
    parameters: [HANDLE],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsCreateProcess(HCS_SYSTEM computeSystem,
  //   PCWSTR processParameters, HCS_PROCESS_INFORMATION* processInformation,
  //   HCS_PROCESS* process, PWSTR* result);
  HcsCreateProcess: {
    parameters: [HANDLE, PCWSTR, "buffer", OUT, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsOpenProcess(HCS_SYSTEM computeSystem, DWORD processId,
  //   HCS_PROCESS* process, PWSTR* result);
  HcsOpenProcess: {
    parameters: [HANDLE, "u32", OUT, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsCloseProcess(HCS_PROCESS process);
  HcsCloseProcess: {
    parameters: [HANDLE],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsTerminateProcess(HCS_PROCESS process, PWSTR* result);
  HcsTerminateProcess: {
    parameters: [HANDLE, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsSignalProcess(HCS_PROCESS process, PCWSTR options,
  //   PWSTR* result);
  HcsSignalProcess: {
    parameters: [HANDLE, PCWSTR, OUT],
    result: HRESULT,
    nonblocking: true,
    optional: true,
  },
  // HRESULT HcsGetProcessInfo(HCS_PROCESS process,
  //   HCS_PROCESS_INFORMATION* processInformation, PWSTR* result);
  HcsGetProcessInfo: {
    parameters: [HANDLE, "buffer", OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsGetProcessProperties(HCS_PROCESS process,
  //   PWSTR* processProperties, PWSTR* result);
  HcsGetProcessProperties: {
    parameters: [HANDLE, OUT, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsModifyProcess(HCS_PROCESS process, PCWSTR settings,
  //   PWSTR* result);
  HcsModifyProcess: {
    parameters: [HANDLE, PCWSTR, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsGetServiceProperties(PCWSTR propertyQuery,
  //   PWSTR* properties, PWSTR* result);
  HcsGetServiceProperties: {
    parameters: [PCWSTR, OUT, OUT],
    result: HRESULT,
    nonblocking: true,
    optional: true,
  },
  // HRESULT HcsRegisterProcessCallback(HCS_PROCESS process,
  //   HCS_NOTIFICATION_CALLBACK callback, void* context,
  //   HCS_CALLBACK* callbackHandle);
  HcsRegisterProcessCallback: {
    parameters: [HANDLE, "function", HANDLE, OUT],
    result: HRESULT,
    nonblocking: true,
  },
  // HRESULT HcsUnregisterProcessCallback(HCS_CALLBACK callbackHandle);
  HcsUnregisterProcessCallback: {
    parameters: [HANDLE],
    result: HRESULT,
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * `void CoTaskMemFree(void* pv)`: frees the strings vmcompute returns. On
 * Windows it comes from ole32; a library standing in for vmcompute on
 * another system exports its own.
 */
export const CO_TASK_MEM_FREE_SYMBOLS = {
  CoTaskMemFree: { parameters: [HANDLE], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * `void CALLBACK HCS_NOTIFICATION_CALLBACK(DWORD notificationType,
 * void* context, HRESULT notificationStatus, PCWSTR notificationData)`.
 */
export const NOTIFICATION_CALLBACK = {
  parameters: ["u32", "pointer", "i32", "pointer"],
  result: "void",
} as const satisfies Deno.UnsafeCallbackDefinition;

/** The loaded library's symbols. */
export type VmcomputeSymbols = Deno.DynamicLibrary<
  typeof VMCOMPUTE_SYMBOLS
>["symbols"];

/** The library and its deallocator, as loaded by {@linkcode openVmcompute}. */
export interface Vmcompute {
  /** The HCS exports; optional ones are `null` where the library lacks them. */
  readonly symbols: VmcomputeSymbols;
  /** Frees a string the library returned. */
  readonly coTaskMemFree: (pointer: Deno.PointerValue) => void;
  /** The file name or path the library was loaded from. */
  readonly path: string;
  /** Unloads the library. */
  close(): void;
}

/**
 * The name the HCS library is loaded by when no path is given: the system's
 * `vmcompute.dll` on Windows, and on other systems a library of the same
 * API found by the dynamic loader's search path (the test bed's simulator).
 */
export function defaultVmcomputePath(): string {
  return Deno.build.os === "windows" ? "vmcompute.dll" : "libvmcompute.so";
}

/**
 * Loads the HCS library. Throws the loader's error, whose message names the
 * file; callers explain what it means for the user.
 */
export function openVmcompute(path = defaultVmcomputePath()): Vmcompute {
  const lib = Deno.dlopen(path, VMCOMPUTE_SYMBOLS);
  let freeLib: Deno.DynamicLibrary<typeof CO_TASK_MEM_FREE_SYMBOLS>;
  try {
    freeLib = Deno.dlopen(
      Deno.build.os === "windows" ? "ole32.dll" : path,
      CO_TASK_MEM_FREE_SYMBOLS,
    );
  } catch (error) {
    lib.close();
    throw error;
  }
  return {
    symbols: lib.symbols,
    coTaskMemFree: (pointer) => freeLib.symbols.CoTaskMemFree(pointer),
    path,
    close() {
      freeLib.close();
      lib.close();
    },
  };
}

/** Encodes a string as a NUL-terminated UTF-16LE `PCWSTR` buffer. */
export function wideString(text: string): Uint16Array<ArrayBuffer> {
  const buffer = new Uint16Array(text.length + 1);
  for (let i = 0; i < text.length; i++) buffer[i] = text.charCodeAt(i);
  return buffer;
}

const UTF16_DECODER = new TextDecoder("utf-16le");

/** Decodes a NUL-terminated UTF-16LE string at `pointer`; `null` gives "". */
export function readWideString(pointer: Deno.PointerValue): string {
  if (pointer === null) return "";
  const view = new Deno.UnsafePointerView(pointer);
  let units = 0;
  while (view.getUint16(units * 2) !== 0) units++;
  if (units === 0) return "";
  // getArrayBuffer does not copy: decode before the memory is freed.
  return UTF16_DECODER.decode(view.getArrayBuffer(units * 2));
}

/** An 8-byte out-parameter (`PWSTR*`, `HCS_SYSTEM*`, `HCS_CALLBACK*`). */
export function outPointer(): BigUint64Array<ArrayBuffer> {
  return new BigUint64Array(1);
}

/** The pointer an out-parameter received, or `null`. */
export function pointerFrom(out: BigUint64Array): Deno.PointerValue {
  return Deno.UnsafePointer.create(out[0]);
}

/**
 * Reads the string an out-parameter received and frees it with
 * CoTaskMemFree, as vmcompute requires whatever the call returned.
 */
export function takeWideString(lib: Vmcompute, out: BigUint64Array): string {
  const pointer = pointerFrom(out);
  if (pointer === null) return "";
  try {
    return readWideString(pointer);
  } finally {
    lib.coTaskMemFree(pointer);
    out[0] = 0n;
  }
}

/** The size of `HCS_PROCESS_INFORMATION` on x64 (HCS.md section 2.1). */
export const PROCESS_INFORMATION_SIZE = 32;

/** `HCS_PROCESS_INFORMATION`, decoded. Handles are `null` when absent. */
export interface ProcessInformation {
  /** The guest's process id. */
  processId: number;
  /** `StdInput`, or `null`. */
  stdInput: Deno.PointerValue;
  /** `StdOutput`, or `null`. */
  stdOutput: Deno.PointerValue;
  /** `StdError`, or `null`. */
  stdError: Deno.PointerValue;
}

/** Decodes an `HCS_PROCESS_INFORMATION` buffer. */
export function decodeProcessInformation(
  buffer: Uint8Array,
): ProcessInformation {
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.length);
  const handle = (offset: number) =>
    Deno.UnsafePointer.create(view.getBigUint64(offset, true));
  return {
    processId: view.getUint32(0, true),
    stdInput: handle(8),
    stdOutput: handle(16),
    stdError: handle(24),
  };
}
