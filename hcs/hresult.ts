/**
 * HRESULT values vmcompute returns, their meaning, and what a user can do
 * about them.
 *
 * vmcompute reports most failures as `ERROR_VMCOMPUTE_*` (0xC037xxxx) and a
 * few as `HCS_E_*` (0x8037xxxx); both encode the same condition in the low
 * word, so the predicates here compare facility and low word, not the whole
 * value.
 *
 * @module
 */

/** Named HRESULTs the product handles. */
export const HRESULT = {
  S_OK: 0,
  /** The operation completes later through the notification callback. */
  OPERATION_PENDING: 0xC0370103,
  TERMINATED_DURING_START: 0xC0370100,
  HYPERV_NOT_INSTALLED: 0xC0370102,
  INVALID_STATE: 0xC0370105,
  UNEXPECTED_EXIT: 0xC0370106,
  TERMINATED: 0xC0370107,
  TIMEOUT: 0xC0370109,
  INVALID_JSON: 0xC037010D,
  SYSTEM_NOT_FOUND: 0xC037010E,
  SYSTEM_ALREADY_EXISTS: 0xC037010F,
  SYSTEM_ALREADY_STOPPED: 0xC0370110,
  /** `HCS_E_ACCESS_DENIED`. */
  HCS_ACCESS_DENIED: 0x8037011B,
  /** `HCS_E_SERVICE_DISCONNECT`. */
  SERVICE_DISCONNECT: 0x8037011E,
  PROCESS_ALREADY_STOPPED: 0x8037011F,
  E_ACCESSDENIED: 0x80070005,
  /** `HRESULT_FROM_WIN32(ERROR_SHARING_VIOLATION)`: a file is in use. */
  SHARING_VIOLATION: 0x80070020,
  E_INVALIDARG: 0x80070057,
  /** `HRESULT_FROM_WIN32(ERROR_NOT_FOUND)`. */
  ELEMENT_NOT_FOUND: 0x80070490,
  /** `HRESULT_FROM_WIN32(ERROR_TIMEOUT)`: our own wait ran out. */
  WAIT_TIMEOUT: 0x800705B4,
  /** `HRESULT_FROM_WIN32(ERROR_PROC_NOT_FOUND)`: an export is missing. */
  PROC_NOT_FOUND: 0x8007007F,
} as const;

const FACILITY_VIRTUALIZATION = 0x37;
const FACILITY_WIN32 = 7;

/** The HRESULT as an unsigned 32-bit number, as Windows prints it. */
export function unsigned(hr: number): number {
  return hr >>> 0;
}

/** `0xC0370103` style text. */
export function formatHresult(hr: number): string {
  return "0x" + unsigned(hr).toString(16).toUpperCase().padStart(8, "0");
}

/** Whether the value reports a failure (the sign bit is set). */
export function failed(hr: number): boolean {
  return (hr | 0) < 0;
}

function facility(hr: number): number {
  return (unsigned(hr) >>> 16) & 0x7ff;
}

function code(hr: number): number {
  return unsigned(hr) & 0xffff;
}

/** Whether `hr` is the HCS condition `expected`, in either encoding. */
export function isHcsCode(hr: number, expected: number): boolean {
  return facility(hr) === FACILITY_VIRTUALIZATION &&
    facility(expected) === FACILITY_VIRTUALIZATION &&
    code(hr) === code(expected);
}

/** `ERROR_VMCOMPUTE_OPERATION_PENDING`: not a failure, wait instead. */
export function isPending(hr: number): boolean {
  return unsigned(hr) === HRESULT.OPERATION_PENDING;
}

/** The system does not exist, or no longer does. */
export function isNotFound(hr: number): boolean {
  return isHcsCode(hr, HRESULT.SYSTEM_NOT_FOUND) ||
    unsigned(hr) === HRESULT.ELEMENT_NOT_FOUND;
}

/** The system or process has already stopped. */
export function isAlreadyStopped(hr: number): boolean {
  return isHcsCode(hr, HRESULT.SYSTEM_ALREADY_STOPPED) ||
    unsigned(hr) === HRESULT.PROCESS_ALREADY_STOPPED ||
    unsigned(hr) === HRESULT.ELEMENT_NOT_FOUND;
}

/** HCS refused the caller: not elevated, or not allowed to see the VM. */
export function isAccessDenied(hr: number): boolean {
  return unsigned(hr) === HRESULT.E_ACCESSDENIED ||
    isHcsCode(hr, HRESULT.HCS_ACCESS_DENIED) ||
    (facility(hr) === FACILITY_WIN32 && code(hr) === 5);
}

/** The texts of the HCS codes (from the Windows SDK's descriptions). */
const HCS_TEXTS: Record<number, string> = {
  0x0100: "The compute system exited unexpectedly while starting",
  0x0101: "The container operating system does not match the host",
  0x0102: "A required virtualization feature (Hyper-V) is not installed",
  0x0103: "The operation is pending and completes asynchronously",
  0x0104: "Too many notifications are pending",
  0x0105: "The operation is not valid in the compute system's current state",
  0x0106: "The compute system exited unexpectedly",
  0x0107: "The compute system was forcefully terminated",
  0x0108: "Could not connect to the guest",
  0x0109: "The compute system did not respond in time",
  0x010A: "The connection to the guest was closed",
  0x010B: "The compute service received an unknown message",
  0x010C: "The guest uses an unsupported protocol version",
  0x010D: "The JSON document is invalid",
  0x010E: "No compute system with that id exists",
  0x010F: "A compute system with that id already exists",
  0x0110: "The compute system is already stopped",
  0x0111: "The guest reported a protocol error",
  0x0112: "The image layer is invalid",
  0x0113: "This operation requires a Windows Insider build",
  0x0114: "The compute service is not available",
  0x0115: "The operation has not started",
  0x0116: "The operation has already started",
  0x0117: "The operation is still running",
  0x0118: "The operation timed out",
  0x0119: "A callback is already registered for this compute system",
  0x011A: "The result document could not be allocated",
  0x011B: "Access to the compute service is denied",
  0x011C: "The guest reported a critical error",
  0x011D: "Process information is not available",
  0x011E: "The connection to the compute service was lost",
  0x011F: "The process has already stopped",
};

/** Texts of the few Win32 codes HCS callers meet, for hosts without them. */
const WIN32_TEXTS: Record<number, string> = {
  0x0002: "The system cannot find the file specified",
  0x0003: "The system cannot find the path specified",
  0x0005: "Access is denied",
  0x0006: "The handle is invalid",
  0x0020: "The file is being used by another process",
  0x0057: "The parameter is incorrect",
  0x007F: "The specified procedure could not be found",
  0x0490: "Element not found",
  0x05B4: "This operation returned because the timeout period expired",
};

/**
 * A lookup of the system's own message text (FormatMessageW on Windows),
 * installed by the platform layer. Returns `undefined` when it has none.
 */
export type SystemMessageLookup = (hr: number) => string | undefined;

let systemMessage: SystemMessageLookup = () => undefined;

/** Installs the platform's message lookup (see {@linkcode hresultText}). */
export function setSystemMessageLookup(lookup: SystemMessageLookup): void {
  systemMessage = lookup;
}

/**
 * Describes an HRESULT in words: HCS codes from our table on every system,
 * other codes from the system's message table where there is one.
 */
export function hresultText(hr: number): string {
  if (facility(hr) === FACILITY_VIRTUALIZATION && HCS_TEXTS[code(hr)]) {
    return HCS_TEXTS[code(hr)];
  }
  const fromSystem = systemMessage(unsigned(hr))?.trim().replace(/\.$/, "");
  if (fromSystem) return fromSystem;
  if (
    (facility(hr) === FACILITY_WIN32 || unsigned(hr) < 0x10000) &&
    WIN32_TEXTS[code(hr)]
  ) {
    return WIN32_TEXTS[code(hr)];
  }
  return "Unknown error";
}

/**
 * What a user can do about a failure, or `undefined` when there is nothing
 * better to say than the error itself.
 */
export function hresultHint(hr: number, id?: string): string | undefined {
  if (isAccessDenied(hr)) {
    return "Run vmrunner as Administrator, or add your account to the " +
      '"Hyper-V Administrators" group and sign in again';
  }
  if (isHcsCode(hr, HRESULT.HYPERV_NOT_INSTALLED)) {
    return "Enable Hyper-V: Enable-WindowsOptionalFeature -Online " +
      "-FeatureName Microsoft-Hyper-V-All, then restart";
  }
  if (isHcsCode(hr, HRESULT.SYSTEM_ALREADY_EXISTS)) {
    return `Choose another id, or stop the old VM with: vmrunner kill ${
      id ?? "<id>"
    }`;
  }
  if (unsigned(hr) === HRESULT.SHARING_VIOLATION) {
    return "A disk can be shared only if every VM that uses it has it " +
      "read-only, the one already running too: run each VM with " +
      "--read-only, or give each its own copy of the disk (--rootfs)";
  }
  if (unsigned(hr) === HRESULT.WAIT_TIMEOUT) {
    return "The Host Compute Service may be busy or hung: check that the " +
      "vmcompute service is running (Get-Service vmcompute) and try again";
  }
  if (isHcsCode(hr, HRESULT.INVALID_JSON)) {
    return "Check the document printed by -debug against the error events";
  }
  if (unsigned(hr) === HRESULT.SERVICE_DISCONNECT) {
    return "The Host Compute Service (vmcompute) stopped or restarted; " +
      "check that it is running, then try again";
  }
  return undefined;
}
