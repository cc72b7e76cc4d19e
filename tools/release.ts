/**
 * The release recipe: builds vmrunner.exe and packs it with the image into
 * the zip users download, `dist/vmrunner-<version>-windows-x64.zip`:
 *
 * ```text
 * vmrunner.exe
 * vm-image/vmlinuz
 * vm-image/initrd
 * vm-image/rootfs.vhdx
 * ```
 *
 * vmrunner.exe finds `vm-image` beside itself, so unpacking the zip
 * anywhere is the whole installation.
 *
 * ```sh
 * deno task release [--exe=FILE] [--output=FILE]
 * ```
 *
 * Without `--exe` it compiles (tools/compile.ts), letting `deno compile`
 * download Deno's Windows runtime: run it where dl.deno.land is reachable,
 * or where a runtime is present (`DENORT_BIN`, or the cache). With
 * `--exe=FILE` it packs that vmrunner.exe instead. The image must be built
 * (`deno task image`, which the task runs first).
 *
 * @module
 */

import { join, resolve } from "node:path";
import { compile, DEFAULT_OUTPUT, REPO } from "./compile.ts";
import { writeZip, type ZipEntry } from "./zip.ts";

/** The image files a release carries, in `vm-image/`. */
export const IMAGE_FILES = ["vmlinuz", "initrd", "rootfs.vhdx"] as const;

/** The product's version, from deno.json. */
export async function version(): Promise<string> {
  const config = JSON.parse(
    await Deno.readTextFile(join(REPO, "deno.json")),
  );
  return String(config.version);
}

/** Options of {@linkcode release}. */
export interface ReleaseOptions {
  /** Pack this vmrunner.exe instead of building one. */
  exe?: string;
  /** Where to write the zip; default `dist/vmrunner-<version>-windows-x64.zip`. */
  output?: string;
  /** The image folder; default `vm-image/` of the repository. */
  imageDir?: string;
  /** Receives progress messages; default stderr. */
  log?: (message: string) => void;
}

/** Builds (unless given) vmrunner.exe and writes the zip. Returns the exit status. */
export async function release(options: ReleaseOptions = {}): Promise<number> {
  const log = options.log ?? ((message) => console.error(message));
  const imageDir = options.imageDir ?? join(REPO, "vm-image");
  for (const file of IMAGE_FILES) {
    const path = join(imageDir, file);
    const size = await Deno.stat(path).then((info) => info.size, () => 0);
    if (size === 0) {
      log(
        `release: the image file ${path} is missing or empty; build the ` +
          "image with: deno task image",
      );
      return 1;
    }
  }
  let exe = options.exe;
  if (exe === undefined) {
    const status = await compile({ download: true, log });
    if (status !== 0) return status;
    exe = DEFAULT_OUTPUT;
  }
  const output = options.output ??
    join(REPO, "dist", `vmrunner-${await version()}-windows-x64.zip`);
  await Deno.mkdir(resolve(output, ".."), { recursive: true });
  const entries: ZipEntry[] = [
    { name: "vmrunner.exe", path: exe },
    ...IMAGE_FILES.map((file) => ({
      name: `vm-image/${file}`,
      path: join(imageDir, file),
    })),
  ];
  log(`release: packing ${entries.map((e) => e.name).join(", ")}`);
  await writeZip(output, entries);
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", await Deno.readFile(output)),
  );
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0"))
    .join("");
  const size = (await Deno.stat(output)).size;
  log(`release: wrote ${output} (${(size / 1e6).toFixed(1)} MB)`);
  log(`release: sha256 ${hex}`);
  return 0;
}

function parseArgs(args: string[]): ReleaseOptions {
  const options: ReleaseOptions = {};
  for (const arg of args) {
    const [key, value] = arg.split(/=(.*)/s, 2);
    if (key === "--exe" && value) options.exe = resolve(value);
    else if (key === "--output" && value) options.output = resolve(value);
    else {
      console.error(
        `release: unknown argument "${arg}"; ` +
          "usage: deno task release [--exe=FILE] [--output=FILE]",
      );
      Deno.exit(2);
    }
  }
  return options;
}

if (import.meta.main) Deno.exit(await release(parseArgs(Deno.args)));
