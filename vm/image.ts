/**
 * Finding the three files a VM boots from, and checking them before any VM
 * is made.
 *
 * @module
 */

import { dirname, isAbsolute, join, resolve } from "./paths.ts";

/** The files of a VM image. */
export interface ImageFiles {
  /** The kernel. */
  kernel: string;
  /** The initrd. */
  initrd: string;
  /** The root disk (VHDX). */
  rootfs: string;
}

/** Where to look, and what to use instead of the folder's files. */
export interface ImageChoice {
  /** A folder holding `vmlinuz`, `initrd` and `rootfs.vhdx`. */
  imageDir?: string;
  /** A kernel elsewhere. */
  kernel?: string;
  /** An initrd elsewhere. */
  initrd?: string;
  /** A root disk elsewhere. */
  rootfs?: string;
}

/** A file of the image is missing or unreadable. */
export class ImageError extends Error {
  /** Always `"ImageError"`. */
  override name = "ImageError";
}

/** The folder name looked for beside the executable and in the cwd. */
export const IMAGE_DIR_NAME = "vm-image";

/**
 * The default image folder: `vm-image` beside the executable (where a
 * release unpacks it next to vmrunner.exe), else in the working directory.
 */
export async function defaultImageDir(): Promise<string> {
  const besideExecutable = join(dirname(Deno.execPath()), IMAGE_DIR_NAME);
  if (await isDirectory(besideExecutable)) return besideExecutable;
  return resolve(IMAGE_DIR_NAME);
}

/**
 * Resolves the image files to absolute paths, as HCS needs, and checks
 * that each can be read.
 *
 * @throws {ImageError} naming the file that is missing or unreadable.
 */
export async function resolveImage(choice: ImageChoice): Promise<ImageFiles> {
  const dir = resolve(choice.imageDir ?? await defaultImageDir());
  const files: ImageFiles = {
    kernel: absolute(choice.kernel ?? join(dir, "vmlinuz")),
    initrd: absolute(choice.initrd ?? join(dir, "initrd")),
    rootfs: absolute(choice.rootfs ?? join(dir, "rootfs.vhdx")),
  };
  for (const [role, path] of Object.entries(files)) {
    await checkReadable(role, path, choice);
  }
  return files;
}

function absolute(path: string): string {
  return isAbsolute(path) ? path : resolve(path);
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

const FLAGS: Record<string, string> = {
  kernel: "--kernel",
  initrd: "--initrd",
  rootfs: "--rootfs",
};

async function checkReadable(role: string, path: string, choice: ImageChoice) {
  const given = choice[role as keyof ImageChoice] !== undefined;
  const where = given
    ? `given with ${FLAGS[role]}`
    : "from the image folder; choose another with --image-dir or " +
      `${FLAGS[role]}, or build the test image with \`deno task image\``;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "does not exist"
      : error instanceof Deno.errors.PermissionDenied
      ? "cannot be read (permission denied)"
      : `cannot be opened (${(error as Error).message})`;
    throw new ImageError(`The ${role} ${path} ${reason} (${where})`);
  }
  try {
    const info = await file.stat();
    if (!info.isFile) {
      throw new ImageError(`The ${role} ${path} is not a file (${where})`);
    }
    if (info.size === 0) {
      throw new ImageError(`The ${role} ${path} is empty (${where})`);
    }
  } finally {
    file.close();
  }
}
