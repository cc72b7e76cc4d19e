/**
 * The permissions the shipped vmrunner.exe has, as `deno` flags. The Wine
 * test run grants exactly these, so a Windows test that needs more fails
 * here as the .exe would; `deno compile` should take them from here too.
 *
 * @module
 */

/** Flags for `deno compile` and for the Windows test run. */
export const VMRUNNER_PERMISSIONS: readonly string[] = [
  // vmcompute.dll, kernel32.dll and ntdll.dll. Named pipes go through
  // kernel32 because Deno's own file APIs want --allow-all for them.
  "--allow-ffi",
  // The vm-image folder beside the .exe.
  "--allow-read",
  // Settings from the environment.
  "--allow-env",
];
