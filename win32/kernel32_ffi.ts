/**
 * The raw Win32 binding vmrunner uses on Windows: symbol tables for
 * kernel32.dll (the console pipe, and message texts for error codes) and
 * the few ntdll.dll calls the pipe needs, the OVERLAPPED and NT structure
 * layouts, and the status codes (x64 only).
 *
 * Why ntdll as well: Deno's FFI does not keep the thread's last-error value
 * from one call to the next, so a kernel32 call that reports failure only
 * through GetLastError cannot be trusted. `ReadFile` returning FALSE could be
 * a pending read or an immediate EOF, and in the second case the OS neither
 * signals the event nor fills the OVERLAPPED (it still says STATUS_PENDING),
 * so waiting would hang; ConnectNamedPipe's ERROR_PIPE_CONNECTED is the same.
 * The Nt* calls return their NTSTATUS, which settles every case.
 *
 * The libraries load on first use, and only on Windows.
 *
 * @module
 */

/** Symbols of kernel32.dll, with their C prototypes. */
export const KERNEL32_SYMBOLS = {
  // HANDLE CreateFileW(LPCWSTR lpFileName, DWORD dwDesiredAccess,
  //   DWORD dwShareMode, LPSECURITY_ATTRIBUTES lpSecurityAttributes,
  //   DWORD dwCreationDisposition, DWORD dwFlagsAndAttributes,
  //   HANDLE hTemplateFile);
  CreateFileW: {
    parameters: ["buffer", "u32", "u32", "pointer", "u32", "u32", "pointer"],
    result: "pointer",
  },
  // HANDLE CreateNamedPipeW(LPCWSTR lpName, DWORD dwOpenMode,
  //   DWORD dwPipeMode, DWORD nMaxInstances, DWORD nOutBufferSize,
  //   DWORD nInBufferSize, DWORD nDefaultTimeOut,
  //   LPSECURITY_ATTRIBUTES lpSecurityAttributes);
  CreateNamedPipeW: {
    parameters: ["buffer", "u32", "u32", "u32", "u32", "u32", "u32", "pointer"],
    result: "pointer",
  },
  // BOOL ConnectNamedPipe(HANDLE hNamedPipe, LPOVERLAPPED lpOverlapped);
  // For overlapped handles only, where it returns at once; it must start
  // before a client can connect, so it is not deferred to a worker thread.
  ConnectNamedPipe: { parameters: ["pointer", "buffer"], result: "i32" },
  // BOOL DisconnectNamedPipe(HANDLE hNamedPipe);
  DisconnectNamedPipe: { parameters: ["pointer"], result: "i32" },
  // BOOL ReadFile(HANDLE hFile, LPVOID lpBuffer, DWORD nNumberOfBytesToRead,
  //   LPDWORD lpNumberOfBytesRead, LPOVERLAPPED lpOverlapped);
  // Blocks when the handle is not overlapped.
  ReadFile: {
    parameters: ["pointer", "buffer", "u32", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  // BOOL WriteFile(HANDLE hFile, LPCVOID lpBuffer,
  //   DWORD nNumberOfBytesToWrite, LPDWORD lpNumberOfBytesWritten,
  //   LPOVERLAPPED lpOverlapped);
  // Blocks when the handle is not overlapped.
  WriteFile: {
    parameters: ["pointer", "buffer", "u32", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  // BOOL GetOverlappedResult(HANDLE hFile, LPOVERLAPPED lpOverlapped,
  //   LPDWORD lpNumberOfBytesTransferred, BOOL bWait);
  // With bWait it sleeps until the operation completes.
  GetOverlappedResult: {
    parameters: ["pointer", "buffer", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  // BOOL CancelIoEx(HANDLE hFile, LPOVERLAPPED lpOverlapped);
  // Only requests cancellation; the operation completes later.
  CancelIoEx: { parameters: ["pointer", "buffer"], result: "i32" },
  // HANDLE CreateEventW(LPSECURITY_ATTRIBUTES lpEventAttributes,
  //   BOOL bManualReset, BOOL bInitialState, LPCWSTR lpName);
  CreateEventW: {
    parameters: ["pointer", "i32", "i32", "buffer"],
    result: "pointer",
  },
  // DWORD WaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds);
  WaitForSingleObject: {
    parameters: ["pointer", "u32"],
    result: "u32",
    nonblocking: true,
  },
  // BOOL CloseHandle(HANDLE hObject);
  // For handles that never wait, such as events.
  CloseHandle: { parameters: ["pointer"], result: "i32" },
  // The same function for file handles: closing one that another thread
  // still does synchronous I/O on waits for that I/O.
  CloseHandleAsync: {
    name: "CloseHandle",
    parameters: ["pointer"],
    result: "i32",
    nonblocking: true,
  },
  // BOOL FlushFileBuffers(HANDLE hFile);
  // On a pipe it waits until the other end has read everything.
  FlushFileBuffers: {
    parameters: ["pointer"],
    result: "i32",
    nonblocking: true,
  },
  // BOOL GetHandleInformation(HANDLE hObject, LPDWORD lpdwFlags);
  GetHandleInformation: { parameters: ["pointer", "buffer"], result: "i32" },
  // DWORD FormatMessageW(DWORD dwFlags, LPCVOID lpSource,
  //   DWORD dwMessageId, DWORD dwLanguageId, LPWSTR lpBuffer, DWORD nSize,
  //   va_list* Arguments);
  FormatMessageW: {
    parameters: ["u32", "pointer", "u32", "u32", "buffer", "u32", "pointer"],
    result: "u32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** Symbols of ntdll.dll, with their C prototypes; each returns NTSTATUS. */
export const NTDLL_SYMBOLS = {
  // NTSTATUS NtCreateFile(PHANDLE FileHandle, ACCESS_MASK DesiredAccess,
  //   POBJECT_ATTRIBUTES ObjectAttributes, PIO_STATUS_BLOCK IoStatusBlock,
  //   PLARGE_INTEGER AllocationSize, ULONG FileAttributes, ULONG ShareAccess,
  //   ULONG CreateDisposition, ULONG CreateOptions, PVOID EaBuffer,
  //   ULONG EaLength);
  NtCreateFile: {
    parameters: [
      "buffer",
      "u32",
      "buffer",
      "buffer",
      "pointer",
      "u32",
      "u32",
      "u32",
      "u32",
      "pointer",
      "u32",
    ],
    result: "u32",
  },
  // NTSTATUS NtCreateNamedPipeFile(PHANDLE FileHandle, ULONG DesiredAccess,
  //   POBJECT_ATTRIBUTES ObjectAttributes, PIO_STATUS_BLOCK IoStatusBlock,
  //   ULONG ShareAccess, ULONG CreateDisposition, ULONG CreateOptions,
  //   ULONG NamedPipeType, ULONG ReadMode, ULONG CompletionMode,
  //   ULONG MaximumInstances, ULONG InboundQuota, ULONG OutboundQuota,
  //   PLARGE_INTEGER DefaultTimeout);
  NtCreateNamedPipeFile: {
    parameters: [
      "buffer",
      "u32",
      "buffer",
      "buffer",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "buffer",
    ],
    result: "u32",
  },
  // NTSTATUS NtReadFile(HANDLE FileHandle, HANDLE Event,
  //   PIO_APC_ROUTINE ApcRoutine, PVOID ApcContext,
  //   PIO_STATUS_BLOCK IoStatusBlock, PVOID Buffer, ULONG Length,
  //   PLARGE_INTEGER ByteOffset, PULONG Key);
  NtReadFile: {
    parameters: [
      "pointer",
      "pointer",
      "pointer",
      "pointer",
      "buffer",
      "buffer",
      "u32",
      "buffer",
      "pointer",
    ],
    result: "u32",
  },
  // NTSTATUS NtWriteFile(HANDLE FileHandle, HANDLE Event,
  //   PIO_APC_ROUTINE ApcRoutine, PVOID ApcContext,
  //   PIO_STATUS_BLOCK IoStatusBlock, PVOID Buffer, ULONG Length,
  //   PLARGE_INTEGER ByteOffset, PULONG Key);
  NtWriteFile: {
    parameters: [
      "pointer",
      "pointer",
      "pointer",
      "pointer",
      "buffer",
      "buffer",
      "u32",
      "buffer",
      "pointer",
    ],
    result: "u32",
  },
  // NTSTATUS NtFsControlFile(HANDLE FileHandle, HANDLE Event,
  //   PIO_APC_ROUTINE ApcRoutine, PVOID ApcContext,
  //   PIO_STATUS_BLOCK IoStatusBlock, ULONG FsControlCode,
  //   PVOID InputBuffer, ULONG InputBufferLength, PVOID OutputBuffer,
  //   ULONG OutputBufferLength);
  NtFsControlFile: {
    parameters: [
      "pointer",
      "pointer",
      "pointer",
      "pointer",
      "buffer",
      "u32",
      "pointer",
      "u32",
      "pointer",
      "u32",
    ],
    result: "u32",
  },
  // NTSTATUS NtQueryObject(HANDLE Handle,
  //   OBJECT_INFORMATION_CLASS ObjectInformationClass,
  //   PVOID ObjectInformation, ULONG ObjectInformationLength,
  //   PULONG ReturnLength);
  NtQueryObject: {
    parameters: ["pointer", "u32", "buffer", "u32", "buffer"],
    result: "u32",
  },
  // ULONG RtlNtStatusToDosError(NTSTATUS Status);
  // A pure lookup: does not touch the thread's last error.
  RtlNtStatusToDosErrorNoTeb: { parameters: ["u32"], result: "u32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The kernel32.dll functions, typed from {@linkcode KERNEL32_SYMBOLS}. */
export type Kernel32 = Deno.DynamicLibrary<typeof KERNEL32_SYMBOLS>["symbols"];
/** The ntdll.dll functions, typed from {@linkcode NTDLL_SYMBOLS}. */
export type Ntdll = Deno.DynamicLibrary<typeof NTDLL_SYMBOLS>["symbols"];

let kernel32Lib: Deno.DynamicLibrary<typeof KERNEL32_SYMBOLS> | undefined;
let ntdllLib: Deno.DynamicLibrary<typeof NTDLL_SYMBOLS> | undefined;

function requireWindows(dll: string): void {
  if (Deno.build.os !== "windows") {
    throw new Error(
      `Cannot load ${dll}: named pipes exist on Windows only, this is ${Deno.build.os}`,
    );
  }
}

/**
 * Returns kernel32.dll's functions, loading the library on first use. It
 * stays loaded for the life of the process.
 *
 * @throws {Error} When not running on Windows.
 */
export function kernel32(): Kernel32 {
  requireWindows("kernel32.dll");
  kernel32Lib ??= Deno.dlopen("kernel32.dll", KERNEL32_SYMBOLS);
  return kernel32Lib.symbols;
}

/**
 * Returns ntdll.dll's functions, loading the library on first use. It stays
 * loaded for the life of the process.
 *
 * @throws {Error} When not running on Windows.
 */
export function ntdll(): Ntdll {
  requireWindows("ntdll.dll");
  ntdllLib ??= Deno.dlopen("ntdll.dll", NTDLL_SYMBOLS);
  return ntdllLib.symbols;
}

// --- Structures (x64) ---------------------------------------------------------

/**
 * Allocates zeroed memory that the OS may write to after the call that
 * received it has returned. `new ArrayBuffer` keeps the bytes off V8's heap:
 * V8 stores small typed arrays made by length (up to 64 bytes) on its heap,
 * where the garbage collector may move them while I/O is pending.
 */
export function allocate(size: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(new ArrayBuffer(size));
}

/**
 * Layout of OVERLAPPED on x64. Its first 16 bytes are the IO_STATUS_BLOCK
 * that the Nt* I/O calls fill: `internal` is the NTSTATUS of the completed
 * operation and `internalHigh` the bytes transferred.
 */
export const OVERLAPPED = {
  size: 32,
  internal: 0,
  internalHigh: 8,
  offset: 16,
  offsetHigh: 20,
  hEvent: 24,
} as const;

/** Makes an OVERLAPPED whose completion sets `event`. */
export function newOverlapped(
  event: Deno.PointerValue,
): Uint8Array<ArrayBuffer> {
  const overlapped = allocate(OVERLAPPED.size);
  new DataView(overlapped.buffer).setBigUint64(
    OVERLAPPED.hEvent,
    Deno.UnsafePointer.value(event),
    true,
  );
  return overlapped;
}

/**
 * Marks an OVERLAPPED as pending before it is handed to an Nt* call, as
 * kernel32 does before its own: the OS writes it only on completion, and
 * GetOverlappedResult returns at once, with stale results, unless it reads
 * STATUS_PENDING there.
 */
export function resetOverlapped(overlapped: Uint8Array): void {
  const view = new DataView(overlapped.buffer, overlapped.byteOffset);
  view.setBigUint64(OVERLAPPED.internal, BigInt(STATUS.PENDING), true);
  view.setBigUint64(OVERLAPPED.internalHigh, 0n, true);
}

/** Reads an OVERLAPPED's NTSTATUS (`Internal`, low 32 bits). */
export function overlappedStatus(overlapped: Uint8Array): number {
  return new DataView(overlapped.buffer, overlapped.byteOffset)
    .getUint32(OVERLAPPED.internal, true);
}

/** Reads an OVERLAPPED's byte count (`InternalHigh`). */
export function overlappedBytes(overlapped: Uint8Array): number {
  return Number(
    new DataView(overlapped.buffer, overlapped.byteOffset)
      .getBigUint64(OVERLAPPED.internalHigh, true),
  );
}

/** Size of IO_STATUS_BLOCK on x64: a status (padded) and a byte count. */
export const IO_STATUS_BLOCK_SIZE = 16;

/** A NUL-terminated UTF-16 string, for LPCWSTR parameters. */
export function wideString(text: string): Uint16Array<ArrayBuffer> {
  const wide = new Uint16Array(new ArrayBuffer((text.length + 1) * 2));
  for (let i = 0; i < text.length; i++) wide[i] = text.charCodeAt(i);
  return wide;
}

/**
 * OBJECT_ATTRIBUTES for an NT path such as `\??\pipe\name`, with the
 * UNICODE_STRING, the name and the security quality of service it points to.
 * Keep the returned object alive for as long as the call that uses
 * `attributes` runs.
 */
export interface ObjectAttributes {
  /** The OBJECT_ATTRIBUTES structure (48 bytes). */
  attributes: Uint8Array<ArrayBuffer>;
  /** Memory it points to; held here so it outlives the call. */
  keep: readonly ArrayBufferView[];
}

/** `OBJECT_ATTRIBUTES.Attributes`: names compare case-insensitively. */
export const OBJ_CASE_INSENSITIVE = 0x40;
/** SECURITY_IMPERSONATION_LEVEL: the server learns nothing of the client. */
export const SECURITY_ANONYMOUS = 0;

/**
 * Builds OBJECT_ATTRIBUTES for `ntPath`. With `impersonationLevel`, it also
 * carries a SECURITY_QUALITY_OF_SERVICE, as CreateFileW does for
 * SECURITY_SQOS_PRESENT.
 */
export function objectAttributes(
  ntPath: string,
  impersonationLevel?: number,
): ObjectAttributes {
  const name = wideString(ntPath);
  // UNICODE_STRING: Length and MaximumLength in bytes (u16 each), then the
  // buffer pointer at 8.
  const unicode = allocate(16);
  const u = new DataView(unicode.buffer);
  u.setUint16(0, ntPath.length * 2, true);
  u.setUint16(2, ntPath.length * 2 + 2, true);
  u.setBigUint64(
    8,
    Deno.UnsafePointer.value(Deno.UnsafePointer.of(name)),
    true,
  );
  // OBJECT_ATTRIBUTES: Length @0, RootDirectory @8, ObjectName @16,
  // Attributes @24, SecurityDescriptor @32, SecurityQualityOfService @40.
  const attributes = allocate(48);
  const a = new DataView(attributes.buffer);
  a.setUint32(0, 48, true);
  a.setBigUint64(
    16,
    Deno.UnsafePointer.value(Deno.UnsafePointer.of(unicode)),
    true,
  );
  a.setUint32(24, OBJ_CASE_INSENSITIVE, true);
  const keep: ArrayBufferView[] = [name, unicode];
  if (impersonationLevel !== undefined) {
    // SECURITY_QUALITY_OF_SERVICE: Length, ImpersonationLevel (u32 each),
    // ContextTrackingMode and EffectiveOnly (u8 each), padded to 12.
    const qos = allocate(12);
    const q = new DataView(qos.buffer);
    q.setUint32(0, 12, true);
    q.setUint32(4, impersonationLevel, true);
    a.setBigUint64(
      40,
      Deno.UnsafePointer.value(Deno.UnsafePointer.of(qos)),
      true,
    );
    keep.push(qos);
  }
  return { attributes, keep };
}

/** Reads a HANDLE that a call wrote into an 8-byte out-parameter. */
export function readHandle(out: Uint8Array): Deno.PointerValue {
  return Deno.UnsafePointer.create(
    new DataView(out.buffer, out.byteOffset).getBigUint64(0, true),
  );
}

/** True for a null handle and for INVALID_HANDLE_VALUE (-1). */
export function isInvalidHandle(handle: Deno.PointerValue): boolean {
  const value = Deno.UnsafePointer.value(handle);
  return value === 0n || value === 0xffff_ffff_ffff_ffffn;
}

// --- Constants -------------------------------------------------------------------

/** Access rights and flags for CreateFileW and NtCreateFile. */
export const GENERIC_READ = 0x8000_0000;
/** Write access to a file or pipe. */
export const GENERIC_WRITE = 0x4000_0000;
/** Lets a handle be waited on; CreateFileW always adds it. */
export const SYNCHRONIZE = 0x0010_0000;
/** Lets attributes be read; CreateFileW always adds it. */
export const FILE_READ_ATTRIBUTES = 0x0080;
/** CreateFileW disposition: fail unless it exists. */
export const OPEN_EXISTING = 3;
/** CreateFileW flag: I/O completes asynchronously, reported via OVERLAPPED. */
export const FILE_FLAG_OVERLAPPED = 0x4000_0000;
/** CreateNamedPipeW open mode: both directions. */
export const PIPE_ACCESS_DUPLEX = 0x3;
/** CreateNamedPipeW pipe mode: byte stream, blocking (the defaults, 0). */
export const PIPE_TYPE_BYTE = 0;
/** NtCreateFile disposition: open, fail if absent. */
export const FILE_OPEN = 1;
/** NtCreateFile disposition: create, fail if present. */
export const FILE_CREATE = 2;
/** NtCreateFile option: the object must not be a directory. */
export const FILE_NON_DIRECTORY_FILE = 0x40;
/** Share access: others may read. */
export const FILE_SHARE_READ = 1;
/** Share access: others may write. */
export const FILE_SHARE_WRITE = 2;
/** FSCTL that waits for a client to connect to a server pipe instance. */
export const FSCTL_PIPE_LISTEN = 0x0011_0008;
/** WaitForSingleObject result: the object was signalled. */
export const WAIT_OBJECT_0 = 0;
/** WaitForSingleObject result: the time ran out first. */
export const WAIT_TIMEOUT = 0x102;
/** WaitForSingleObject's unlimited wait. */
export const INFINITE = 0xffff_ffff;

/** NTSTATUS values the pipe code tells apart, by name. */
export const STATUS = {
  SUCCESS: 0x0000_0000,
  PENDING: 0x0000_0103,
  BUFFER_OVERFLOW: 0x8000_0005,
  INVALID_HANDLE: 0xc000_0008,
  INVALID_PARAMETER: 0xc000_000d,
  END_OF_FILE: 0xc000_0011,
  ACCESS_DENIED: 0xc000_0022,
  OBJECT_NAME_INVALID: 0xc000_0033,
  OBJECT_NAME_NOT_FOUND: 0xc000_0034,
  OBJECT_NAME_COLLISION: 0xc000_0035,
  OBJECT_PATH_NOT_FOUND: 0xc000_003a,
  INSTANCE_NOT_AVAILABLE: 0xc000_00ab,
  PIPE_NOT_AVAILABLE: 0xc000_00ac,
  INVALID_PIPE_STATE: 0xc000_00ad,
  PIPE_BUSY: 0xc000_00ae,
  PIPE_DISCONNECTED: 0xc000_00b0,
  PIPE_CLOSING: 0xc000_00b1,
  PIPE_CONNECTED: 0xc000_00b2,
  PIPE_LISTENING: 0xc000_00b3,
  CANCELLED: 0xc000_0120,
  PIPE_BROKEN: 0xc000_014b,
} as const;

/** Win32 error names for the codes these statuses map to. */
const WIN32_ERROR_NAMES: Record<number, string> = {
  2: "ERROR_FILE_NOT_FOUND",
  3: "ERROR_PATH_NOT_FOUND",
  5: "ERROR_ACCESS_DENIED",
  6: "ERROR_INVALID_HANDLE",
  38: "ERROR_HANDLE_EOF",
  87: "ERROR_INVALID_PARAMETER",
  109: "ERROR_BROKEN_PIPE",
  123: "ERROR_INVALID_NAME",
  183: "ERROR_ALREADY_EXISTS",
  231: "ERROR_PIPE_BUSY",
  232: "ERROR_NO_DATA",
  233: "ERROR_PIPE_NOT_CONNECTED",
  234: "ERROR_MORE_DATA",
  535: "ERROR_PIPE_CONNECTED",
  536: "ERROR_PIPE_LISTENING",
  995: "ERROR_OPERATION_ABORTED",
  997: "ERROR_IO_PENDING",
};

/** True when an NTSTATUS is an error (severity 3), not success or a warning. */
export function isNtError(status: number): boolean {
  return status >>> 30 === 3;
}

/**
 * Describes an NTSTATUS for a message, with the Win32 error it maps to, as
 * in `STATUS_PIPE_BROKEN 0xC000014B (ERROR_BROKEN_PIPE 109)`. The Win32 code
 * comes from ntdll when it is loaded.
 */
export function describeStatus(status: number): string {
  const entry = Object.entries(STATUS).find(([, value]) => value === status);
  const hex = "0x" + (status >>> 0).toString(16).toUpperCase().padStart(8, "0");
  const name = entry ? `STATUS_${entry[0]} ${hex}` : `NTSTATUS ${hex}`;
  if (ntdllLib === undefined) return name;
  const win32 = ntdllLib.symbols.RtlNtStatusToDosErrorNoTeb(status);
  const win32Name = WIN32_ERROR_NAMES[win32] ?? "Win32 error";
  return `${name} (${win32Name} ${win32})`;
}

// --- Message texts --------------------------------------------------------

const FORMAT_MESSAGE_IGNORE_INSERTS = 0x0200;
const FORMAT_MESSAGE_FROM_SYSTEM = 0x1000;

/**
 * The system's text for an error code (an HRESULT or a Win32 error), or
 * `undefined` when the system has none. Win32 errors wrapped in an HRESULT
 * are looked up by their Win32 code, which the system knows more of.
 */
export function systemMessage(code: number): string | undefined {
  const unsigned = code >>> 0;
  const id = (unsigned & 0xffff0000) === 0x80070000
    ? unsigned & 0xffff
    : unsigned;
  const buffer = new Uint16Array(512);
  const length = kernel32().FormatMessageW(
    FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
    null,
    id,
    0,
    buffer,
    buffer.length,
    null,
  );
  if (length === 0) return undefined;
  return String.fromCharCode(...buffer.subarray(0, length)).trim();
}
