/**
 * Where the Windows tests find things, and how Wine's side names them.
 *
 * @module
 */

/** The repository, without a trailing slash. */
export const REPO = new URL("../..", import.meta.url).pathname.replace(
  /\/$/,
  "",
);

/** The simulator's build folder, which holds `vmcompute.dll`. */
export const SIM_BUILD_DIR = `${REPO}/tests/hcs-sim/build`;

/** A Linux path as the Windows side sees it: `/x/y` is `Z:\x\y`. */
export function windowsPath(path: string): string {
  return path.startsWith("/") ? `Z:${path.replaceAll("/", "\\")}` : path;
}
