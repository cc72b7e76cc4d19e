/**
 * The `deno` flags the shipped vmrunner.exe runs with, which `deno task
 * compile` (tools/compile.ts) bakes into the .exe.
 *
 * The permissions are the one list that the Windows tests grant too, both
 * the tests run inside Wine and the vmrunner processes the end-to-end tests
 * start: a Windows code path that needs more fails in the tests as it would
 * in the .exe. The README's "Permissions" says why each is needed. On the
 * Linux test bed vmrunner runs with the same list and the network, in
 * {@linkcode TEST_BED_PERMISSIONS}; with {@linkcode VMRUNNER_V8_FLAGS},
 * in {@linkcode TEST_BED_RUN_FLAGS}.
 *
 * @module
 */

/**
 * V8's flags for a vmrunner process. Lite mode runs JavaScript in the
 * interpreter only: no machine code is compiled, so no compiler works on
 * V8's worker threads, and a `vmrunner true` peaks at 57 MB instead of 64.
 * vmrunner does little JavaScript per byte of console: a run that prints
 * 2 MiB took about the same CPU time (BENCHMARKS.md).
 */
export const VMRUNNER_V8_FLAGS: readonly string[] = ["--v8-flags=--lite-mode"];

/** Flags for `deno compile`, `deno run` and `deno test`. */
export const VMRUNNER_PERMISSIONS: readonly string[] = [
  // vmcompute.dll, ole32.dll, kernel32.dll and ntdll.dll; unscoped, as
  // callbacks and pointer reads need (DENO.md 5). Named pipes go through
  // kernel32 because Deno's own file APIs want --allow-all for them.
  "--allow-ffi",
  // The image (vm-image beside the .exe, --image-dir, --kernel, ...).
  "--allow-read",
  // --console-log FILE.
  "--allow-write",
  // VMRUNNER_USER, VMRUNNER_PASSWORD, VMRUNNER_TIMEOUT_*. Not narrowed to
  // those names: the tests run inside Wine with this same list, and they
  // set the simulator's HCS_SIM_* variables.
  "--allow-env",
  // --memory is checked against the host's memory before a VM is made.
  "--allow-sys=systemMemoryInfo",
  // A missing permission is an error, never a question on the terminal.
  "--no-prompt",
];

/**
 * vmrunner's permissions on the Linux test bed, as `deno task start`
 * grants them (a unit test holds deno.json to this list): the shipped ones
 * and the network, for the simulator's Unix sockets, which stand for the
 * named pipes that Windows opens through kernel32.
 */
export const TEST_BED_PERMISSIONS: readonly string[] = [
  ...VMRUNNER_PERMISSIONS,
  "--allow-net",
];

/**
 * The `deno run` flags of a vmrunner process on the Linux test bed, as
 * `deno task start`, the tests and the bench start it.
 */
export const TEST_BED_RUN_FLAGS: readonly string[] = [
  ...VMRUNNER_V8_FLAGS,
  ...TEST_BED_PERMISSIONS,
];
