/**
 * Builds `dist/vmrunner.exe`: `deno compile` of main.ts for
 * x86_64-pc-windows-msvc, with the permissions of tools/deno_flags.ts
 * (the list the Windows tests grant) baked in.
 *
 * ```sh
 * deno task compile [--download] [--output=FILE]
 * ```
 *
 * `deno compile` embeds the program in Deno's runtime for the target,
 * `denort.exe`, which it takes from `DENORT_BIN` (the unpacked .exe), else
 * from its cache (`$DENO_DIR/dl/release/v<version>/denort-<target>.zip`),
 * else downloads from dl.deno.land. Where vmrunner is developed that site
 * cannot be reached, so this tool downloads only when told to
 * (`--download`, as the release recipe does) and otherwise stops before
 * compiling, saying where to put a runtime.
 *
 * Exit status: 0 built; 3 no runtime here (nothing built); 1 any other
 * failure.
 *
 * @module
 */

import { basename, dirname, join, resolve } from "node:path";
import { VMRUNNER_PERMISSIONS, VMRUNNER_V8_FLAGS } from "./deno_flags.ts";

/** The repository, without a trailing slash. */
export const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** The Windows target of `deno compile`. */
export const TARGET = "x86_64-pc-windows-msvc";
/** Where `deno task compile` puts the .exe. */
export const DEFAULT_OUTPUT = join(REPO, "dist", "vmrunner.exe");
/** Exit status when there is no runtime to compile with. */
export const EXIT_NO_RUNTIME = 3;

/** Where the runtime comes from, or why there is none. */
export type Runtime =
  | { found: true; source: string }
  | { found: false; reason: string };

/** The Deno cache folder `deno compile` looks in. */
export async function denoDir(): Promise<string> {
  const fromEnv = Deno.env.get("DENO_DIR");
  if (fromEnv) return fromEnv;
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return JSON.parse(new TextDecoder().decode(stdout)).denoDir;
}

/** The cached runtime zip that `deno compile` uses without downloading. */
export function cachedRuntimePath(dir: string, version: string): string {
  return join(dir, "dl", "release", `v${version}`, `denort-${TARGET}.zip`);
}

/** The runtime's download address, for messages. */
export function runtimeUrl(version: string): string {
  return `https://dl.deno.land/release/v${version}/denort-${TARGET}.zip`;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function startsWith(path: string, magic: string): Promise<boolean> {
  const file = await Deno.open(path);
  try {
    const head = new Uint8Array(magic.length);
    const read = await file.read(head);
    return read === magic.length &&
      new TextDecoder().decode(head) === magic;
  } finally {
    file.close();
  }
}

/**
 * Finds the runtime `deno compile` would use, without downloading: from
 * `DENORT_BIN`, else the cache.
 */
export async function findRuntime(
  version = Deno.version.deno,
): Promise<Runtime> {
  const fromEnv = Deno.env.get("DENORT_BIN");
  if (fromEnv) {
    if (!await isFile(fromEnv)) {
      return { found: false, reason: `DENORT_BIN=${fromEnv} is not a file` };
    }
    if (await startsWith(fromEnv, "PK")) {
      return {
        found: false,
        reason: `DENORT_BIN=${fromEnv} is a zip; it must be the unpacked ` +
          `denort.exe (or put the zip at ${
            cachedRuntimePath(await denoDir(), version)
          })`,
      };
    }
    if (!await startsWith(fromEnv, "MZ")) {
      return {
        found: false,
        reason: `DENORT_BIN=${fromEnv} is not a Windows executable`,
      };
    }
    if (basename(fromEnv).toLowerCase() === "deno.exe") {
      // Compiling "works", but the .exe starts Deno's command line, not
      // vmrunner: only denort looks for the embedded program.
      return {
        found: false,
        reason: `DENORT_BIN=${fromEnv} is the full deno.exe, which cannot ` +
          "stand in for denort.exe (the result would start Deno's own " +
          "command line)",
      };
    }
    return { found: true, source: `DENORT_BIN=${fromEnv}` };
  }
  const cached = cachedRuntimePath(await denoDir(), version);
  if (await isFile(cached)) return { found: true, source: cached };
  return {
    found: false,
    reason: `no denort for Deno ${version} (${TARGET}) is here: DENORT_BIN ` +
      `is not set, and ${cached} does not exist`,
  };
}

/** What to tell the user when there is no runtime. */
export async function noRuntimeHelp(
  reason: string,
  version = Deno.version.deno,
): Promise<string> {
  return [
    `compile: cannot build vmrunner.exe: ${reason}.`,
    "  deno compile embeds vmrunner in Deno's Windows runtime, denort.exe, " +
    `of the same version (${version}).`,
    `  It would download it from ${runtimeUrl(version)};`,
    "  this task does not, unless asked with --download, because the " +
    "machines vmrunner is",
    "  developed and tested on cannot reach that site. To build:",
    `  - set DENORT_BIN to an unpacked denort.exe of Deno ${version} ` +
    `(${TARGET}), or`,
    `  - put denort-${TARGET}.zip in ` +
    dirname(cachedRuntimePath(await denoDir(), version)) + "/, or",
    "  - where dl.deno.land is reachable: deno task compile --download " +
    "(or deno task release).",
    "  The full deno.exe (npm @deno/win32-x64) cannot stand in for " +
    "denort.exe.",
  ].join("\n");
}

/** The `deno compile` arguments that build vmrunner.exe at `output`. */
export function compileArgs(output: string): string[] {
  return [
    "compile",
    "--target",
    TARGET,
    ...VMRUNNER_V8_FLAGS,
    ...VMRUNNER_PERMISSIONS,
    "--output",
    output,
    join(REPO, "main.ts"),
  ];
}

/** Options of {@linkcode compile}. */
export interface CompileOptions {
  /** Where to write the .exe; default `dist/vmrunner.exe`. */
  output?: string;
  /** Let `deno compile` download the runtime when none is here. */
  download?: boolean;
  /** Receives progress messages; default stderr. */
  log?: (message: string) => void;
}

/**
 * Builds vmrunner.exe. Returns the exit status: 0 built,
 * {@linkcode EXIT_NO_RUNTIME} without a runtime, 1 when `deno compile`
 * failed.
 */
export async function compile(options: CompileOptions = {}): Promise<number> {
  const output = options.output ?? DEFAULT_OUTPUT;
  const log = options.log ?? ((message) => console.error(message));
  const runtime = await findRuntime();
  if (runtime.found) {
    log(`compile: runtime: ${runtime.source}`);
  } else if (options.download && !Deno.env.get("DENORT_BIN")) {
    log(`compile: runtime: downloading ${runtimeUrl(Deno.version.deno)}`);
  } else {
    log(await noRuntimeHelp(runtime.reason));
    return EXIT_NO_RUNTIME;
  }
  await Deno.mkdir(dirname(output), { recursive: true });
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: compileArgs(output),
    cwd: REPO,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) {
    log(`compile: deno compile failed (exit ${code}); see above`);
    return 1;
  }
  if (!await isFile(output) || !await startsWith(output, "MZ")) {
    log(`compile: deno compile wrote no Windows executable at ${output}`);
    return 1;
  }
  const size = (await Deno.stat(output)).size;
  log(`compile: built ${output} (${(size / 1e6).toFixed(1)} MB)`);
  return 0;
}

function parseArgs(args: string[]): CompileOptions {
  const options: CompileOptions = {};
  for (const arg of args) {
    const [key, value] = arg.split(/=(.*)/s, 2);
    if (arg === "--download") options.download = true;
    else if (key === "--output" && value) options.output = resolve(value);
    else {
      console.error(
        `compile: unknown argument "${arg}"; ` +
          "usage: deno task compile [--download] [--output=FILE]",
      );
      Deno.exit(2);
    }
  }
  return options;
}

if (import.meta.main) Deno.exit(await compile(parseArgs(Deno.args)));
