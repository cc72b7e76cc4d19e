/**
 * The vmrunner command: boots a throwaway Linux VM through the Windows Host
 * Compute Service and runs a command in it, or opens a shell.
 *
 * @module
 */

import { main } from "./cli/main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
