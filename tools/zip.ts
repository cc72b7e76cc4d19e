/**
 * A small zip writer for the release archive, so that packaging needs no
 * zip program on any system. Entries are deflated, streamed from disk, and
 * named in UTF-8. There is no zip64: a file or archive of 4 GiB or more is
 * refused with an error rather than written wrong.
 *
 * @module
 */

/** One file to add: its name in the archive and where it is on disk. */
export interface ZipEntry {
  /** The name in the archive, with `/` between folders. */
  name: string;
  /** The file to read. */
  path: string;
}

const LIMIT = 0xffff_ffff;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb8_8320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** Continues a CRC-32 (as zip uses it) over `bytes`; start with 0. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  }
  return ~c >>> 0;
}

/** MS-DOS date and time, as zip stores them (two-second steps). */
function dosDateTime(date: Date): { date: number; time: number } {
  const year = Math.max(date.getUTCFullYear(), 1980);
  return {
    date: ((year - 1980) << 9) | ((date.getUTCMonth() + 1) << 5) |
      date.getUTCDate(),
    time: (date.getUTCHours() << 11) | (date.getUTCMinutes() << 5) |
      (date.getUTCSeconds() >> 1),
  };
}

interface Written {
  name: Uint8Array;
  crc: number;
  compressed: number;
  size: number;
  offset: number;
  date: number;
  time: number;
}

const FLAG_UTF8_NAME = 0x0800;
const METHOD_DEFLATE = 8;
const VERSION = 20; // 2.0: deflate; made by MS-DOS, so no Unix attributes

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await file.write(bytes.subarray(offset));
  }
}

function localHeader(entry: Written): Uint8Array {
  const header = new Uint8Array(30 + entry.name.length);
  const view = new DataView(header.buffer);
  view.setUint32(0, 0x0403_4b50, true);
  view.setUint16(4, VERSION, true);
  view.setUint16(6, FLAG_UTF8_NAME, true);
  view.setUint16(8, METHOD_DEFLATE, true);
  view.setUint16(10, entry.time, true);
  view.setUint16(12, entry.date, true);
  view.setUint32(14, entry.crc, true);
  view.setUint32(18, entry.compressed, true);
  view.setUint32(22, entry.size, true);
  view.setUint16(26, entry.name.length, true);
  view.setUint16(28, 0, true); // no extra field
  header.set(entry.name, 30);
  return header;
}

function centralHeader(entry: Written): Uint8Array {
  const header = new Uint8Array(46 + entry.name.length);
  const view = new DataView(header.buffer);
  view.setUint32(0, 0x0201_4b50, true);
  view.setUint16(4, VERSION, true); // made by
  view.setUint16(6, VERSION, true); // needed
  view.setUint16(8, FLAG_UTF8_NAME, true);
  view.setUint16(10, METHOD_DEFLATE, true);
  view.setUint16(12, entry.time, true);
  view.setUint16(14, entry.date, true);
  view.setUint32(16, entry.crc, true);
  view.setUint32(20, entry.compressed, true);
  view.setUint32(24, entry.size, true);
  view.setUint16(28, entry.name.length, true);
  // extra, comment, disk, internal and external attributes: all 0
  view.setUint32(42, entry.offset, true);
  header.set(entry.name, 46);
  return header;
}

function endOfCentralDirectory(
  count: number,
  size: number,
  offset: number,
): Uint8Array {
  const record = new Uint8Array(22);
  const view = new DataView(record.buffer);
  view.setUint32(0, 0x0605_4b50, true);
  view.setUint16(8, count, true); // entries on this disk
  view.setUint16(10, count, true); // entries in all
  view.setUint32(12, size, true);
  view.setUint32(16, offset, true);
  return record;
}

/**
 * Writes a zip archive at `output` holding `entries`, in order.
 *
 * @throws {RangeError} when a file, or the archive, reaches 4 GiB, or
 * there are more than 65535 entries (zip64 would be needed).
 */
export async function writeZip(
  output: string,
  entries: readonly ZipEntry[],
): Promise<void> {
  if (entries.length > 0xffff) {
    throw new RangeError(
      `Cannot zip ${entries.length} files: at most 65535 without zip64`,
    );
  }
  const out = await Deno.open(output, {
    write: true,
    create: true,
    truncate: true,
  });
  try {
    const written: Written[] = [];
    let position = 0;
    for (const { name, path } of entries) {
      const info = await Deno.stat(path);
      if (info.size >= LIMIT) {
        throw new RangeError(
          `Cannot zip ${path}: it has 4 GiB or more, which needs zip64`,
        );
      }
      const entry: Written = {
        name: new TextEncoder().encode(name),
        crc: 0,
        compressed: 0,
        size: 0,
        offset: position,
        ...dosDateTime(info.mtime ?? new Date()),
      };
      // The header first with the sizes unknown, rewritten once they are.
      await writeAll(out, localHeader(entry));
      const file = await Deno.open(path);
      const counting = new TransformStream<
        Uint8Array<ArrayBuffer>,
        Uint8Array<ArrayBuffer>
      >({
        transform(chunk, controller) {
          entry.crc = crc32(chunk, entry.crc);
          entry.size += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const compressed = file.readable.pipeThrough(counting).pipeThrough(
        new CompressionStream("deflate-raw"),
      );
      for await (const chunk of compressed) {
        await writeAll(out, chunk);
        entry.compressed += chunk.length;
      }
      position += 30 + entry.name.length + entry.compressed;
      if (position >= LIMIT) {
        throw new RangeError(
          `Cannot zip ${path}: the archive reaches 4 GiB, which needs zip64`,
        );
      }
      await out.seek(entry.offset, Deno.SeekMode.Start);
      await writeAll(out, localHeader(entry));
      await out.seek(position, Deno.SeekMode.Start);
      written.push(entry);
    }
    let directorySize = 0;
    for (const entry of written) {
      const header = centralHeader(entry);
      await writeAll(out, header);
      directorySize += header.length;
    }
    if (position + directorySize >= LIMIT) {
      throw new RangeError("Cannot zip: the archive reaches 4 GiB");
    }
    await writeAll(
      out,
      endOfCentralDirectory(written.length, directorySize, position),
    );
  } finally {
    out.close();
  }
}
