/**
 * Loading `vmcompute.dll` once per process, with an error that tells the
 * user what its absence means.
 *
 * @module
 */

import { systemMessage } from "../win32/kernel32_ffi.ts";
import { HcsError } from "./hcs_error.ts";
import { setSystemMessageLookup } from "./hresult.ts";
import {
  defaultVmcomputePath,
  openVmcompute,
  type Vmcompute,
} from "./vmcompute_ffi.ts";

/** `HRESULT_FROM_WIN32(ERROR_MOD_NOT_FOUND)`. */
const MOD_NOT_FOUND = 0x8007007E;

const loaded = new Map<string, Vmcompute>();

/**
 * The HCS library at `path` (by default `vmcompute.dll` on Windows), loaded
 * on first use and kept for the life of the process: HCS may still call
 * into our callback until every handle is closed, so it is never unloaded
 * behind a caller's back.
 *
 * @throws {HcsError} when the library cannot be loaded, saying why that
 * usually happens.
 */
export function vmcompute(path: string = defaultVmcomputePath()): Vmcompute {
  const cached = loaded.get(path);
  if (cached) return cached;
  let lib: Vmcompute;
  try {
    lib = openVmcompute(path);
  } catch (error) {
    if (
      error instanceof Deno.errors.PermissionDenied ||
      error instanceof Deno.errors.NotCapable
    ) {
      throw error;
    }
    throw new HcsError({
      operation: "LoadLibrary",
      hresult: MOD_NOT_FOUND,
      detail: Deno.build.os === "windows"
        ? `Cannot load ${path}: the Host Compute Service is not ` +
          "available. vmrunner needs Windows 10 1809 or later with " +
          'the "Hyper-V" and "Containers" features enabled'
        : `Cannot load ${path}: vmrunner drives the Windows Host Compute ` +
          "Service; on this system it needs a library with the same " +
          "API on the loader's search path (LD_LIBRARY_PATH), such as " +
          "the test bed's simulator built by `deno task sim`",
      cause: error,
    });
  }
  loaded.set(path, lib);
  if (Deno.build.os === "windows") setSystemMessageLookup(systemMessage);
  return lib;
}
