/**
 * The few path operations that finding an image needs, for POSIX and
 * Windows paths. `node:path` would do, but importing it starts Deno's Node
 * compatibility layer, some 12 ms and 6 MB at every start (BENCHMARKS.md).
 *
 * Each function takes `windows` to choose the kind of path, the host's by
 * default, so that both kinds can be tested anywhere.
 *
 * @module
 */

const HOST_IS_WINDOWS = Deno.build.os === "windows";

/**
 * Whether `path` names the same file whatever the working directory:
 * `/x`; on Windows `C:\x`, `C:/x` or `\\server\share\x`. A Windows path
 * that is rooted but has no drive (`\x`) is not: its drive is the working
 * directory's.
 */
export function isAbsolute(path: string, windows = HOST_IS_WINDOWS): boolean {
  return windows
    ? /^[A-Za-z]:[\\/]|^[\\/]{2}/.test(path)
    : path.startsWith("/");
}

/** `path` made absolute against `cwd`, with `.` and `..` worked out. */
export function resolve(
  path: string,
  cwd: string = Deno.cwd(),
  windows = HOST_IS_WINDOWS,
): string {
  if (!windows) {
    return normalize(path.startsWith("/") ? path : `${cwd}/${path}`, false);
  }
  const slashed = path.replaceAll("/", "\\");
  if (isAbsolute(slashed, true)) return normalize(slashed, true);
  const cwdDrive = /^[A-Za-z]:/.exec(cwd)?.[0] ?? "";
  // `\x`: the working directory's drive.
  if (slashed.startsWith("\\")) return normalize(cwdDrive + slashed, true);
  // `D:x`: relative to D:'s own working directory, which only cmd.exe
  // keeps; the working directory if it is on D:, else D:'s root.
  const drive = /^[A-Za-z]:/.exec(slashed)?.[0];
  if (drive) {
    const rest = slashed.slice(2);
    const base = drive.toUpperCase() === cwdDrive.toUpperCase()
      ? cwd
      : `${drive}\\`;
    return normalize(`${base}\\${rest}`, true);
  }
  return normalize(`${cwd}\\${slashed}`, true);
}

/** `dir` and `name` joined with the path separator. */
export function join(
  dir: string,
  name: string,
  windows = HOST_IS_WINDOWS,
): string {
  const separator = windows ? "\\" : "/";
  const trimmed = dir.replace(windows ? /[\\/]+$/ : /\/+$/, "");
  return `${trimmed}${separator}${name}`;
}

/** The folder that holds `path`: `/a/b` gives `/a`, `C:\a` gives `C:\`. */
export function dirname(path: string, windows = HOST_IS_WINDOWS): string {
  const { root, parts } = split(path, windows);
  if (parts.length <= 1) return root || ".";
  return root + parts.slice(0, -1).join(windows ? "\\" : "/");
}

/** `path` with empty, `.` and `..` parts worked out; the root is kept. */
function normalize(path: string, windows: boolean): string {
  const { root, parts } = split(path, windows);
  const kept: string[] = [];
  for (const part of parts) {
    if (part === ".") continue;
    // `..` at the root stays at the root, as the system treats it.
    if (part === "..") kept.pop();
    else kept.push(part);
  }
  return root + kept.join(windows ? "\\" : "/");
}

/**
 * The root (`/`, `C:\`, `\\server\share\`, or none when relative) and the
 * parts after it.
 */
function split(
  path: string,
  windows: boolean,
): { root: string; parts: string[] } {
  if (!windows) {
    const root = path.startsWith("/") ? "/" : "";
    return { root, parts: path.split("/").filter((part) => part !== "") };
  }
  const slashed = path.replaceAll("/", "\\");
  const unc = /^\\\\([^\\]+)\\([^\\]+)\\?/.exec(slashed);
  if (unc) {
    return {
      root: `\\\\${unc[1]}\\${unc[2]}\\`,
      parts: slashed.slice(unc[0].length).split("\\").filter(Boolean),
    };
  }
  const root = /^[A-Za-z]:\\|^[A-Za-z]:|^\\/.exec(slashed)?.[0] ?? "";
  return {
    root,
    parts: slashed.slice(root.length).split("\\").filter(Boolean),
  };
}
