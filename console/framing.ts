/**
 * Framing of command output on a shared serial line.
 *
 * The guest prints markers around each command's output:
 * `@@vmr:<nonce>:b@@\n` before it, `@@vmr:<nonce>:e:<status>@@\n` after it,
 * and `@@vmr:<nonce>:a:<count>@@` to acknowledge input it has consumed. The
 * nonce is fresh for every command, so neither earlier output nor the
 * command's own output can end a frame early, and the command text sent to
 * the guest never contains a marker literally (it prints `@` as `\100`).
 *
 * Kernel messages reach the console between any two bytes of a write, so a
 * first stage removes them before markers are matched; see
 * {@linkcode KernelMessageFilter}.
 *
 * @module
 */

const AT = 0x40; // "@"
const OPEN_BRACKET = 0x5b; // "["
const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const DOT = 0x2e;
const CLOSE_BRACKET = 0x5d; // "]"

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Nothing; shared, as no one writes into a zero-length array. */
const EMPTY = new Uint8Array(0);

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
}

/** The longest kernel console line we wait for before deciding. */
const MAX_KERNEL_LINE = 2048;

/**
 * Removes kernel console messages from a byte stream.
 *
 * The guest's terminal is set to pass output through untouched, so command
 * output ends lines with a bare `\n`; the kernel's serial console writes
 * `[ seconds.micros] text\r\n` regardless. A block of that shape is a kernel
 * message. A kernel that prints no timestamps (`printk.time=0`) is not
 * recognised; its messages stay in the output.
 */
export class KernelMessageFilter {
  #carry: Uint8Array = EMPTY;

  /**
   * Filters the next chunk. Bytes that might begin a kernel message are
   * held back until the next chunk decides.
   */
  push(chunk: Uint8Array): { data: Uint8Array; messages: string[] } {
    // Most chunks of a command's output hold no "[": they pass as they are.
    if (this.#carry.length === 0 && chunk.indexOf(OPEN_BRACKET) < 0) {
      return { data: chunk, messages: [] };
    }
    const data = concat(this.#carry, chunk);
    this.#carry = EMPTY;
    const pieces: Uint8Array[] = [];
    const messages: string[] = [];
    let start = 0;
    let from = 0;
    while (true) {
      const at = data.indexOf(OPEN_BRACKET, from);
      if (at < 0) break;
      const end = kernelLineEnd(data, at);
      if (end === undefined) {
        pieces.push(data.subarray(start, at));
        this.#carry = data.slice(at);
        start = data.length;
        break;
      }
      if (end < 0) {
        from = at + 1;
        continue;
      }
      pieces.push(data.subarray(start, at));
      messages.push(decoder.decode(data.subarray(at, end - 2)));
      start = from = end;
    }
    if (start < data.length) pieces.push(data.subarray(start));
    return { data: pieces.reduce(concat, EMPTY), messages };
  }

  /** Releases whatever is held back, at the end of the stream. */
  flush(): Uint8Array {
    const rest = this.#carry;
    this.#carry = EMPTY;
    return rest;
  }
}

/**
 * Where the kernel line starting at `at` ends (after its `\r\n`), -1 if
 * it is not one, or undefined if the bytes so far cannot tell.
 */
function kernelLineEnd(data: Uint8Array, at: number): number | undefined {
  let i = at + 1;
  const need = () => i >= data.length;
  while (!need() && data[i] === SPACE) i++;
  if (need()) return undefined;
  const digitsStart = i;
  while (!need() && isDigit(data[i])) i++;
  if (need()) return undefined;
  if (i === digitsStart || data[i] !== DOT) return -1;
  i++;
  for (let n = 0; n < 6; n++, i++) {
    if (need()) return undefined;
    if (!isDigit(data[i])) return -1;
  }
  if (need()) return undefined;
  if (data[i] !== CLOSE_BRACKET) return -1;
  i++;
  // The kernel writes "] " and pads the seconds to five places.
  if (i >= data.length) return undefined;
  if (data[i] !== SPACE || i - at < 14) return -1;
  while (true) {
    if (need()) return i - at > MAX_KERNEL_LINE ? -1 : undefined;
    if (data[i] === LF) return data[i - 1] === CR ? i + 1 : -1;
    i++;
  }
}

/** What {@linkcode FrameScanner.push} found. */
export type FrameEvent =
  | { kind: "begin" }
  | { kind: "output"; bytes: Uint8Array }
  | { kind: "ack"; count: number }
  | { kind: "end"; status: number };

/**
 * Finds one command's frame in the console stream: discards what comes
 * before the begin marker, passes the output on, takes out input
 * acknowledgements, and stops at the end marker.
 */
export class FrameScanner {
  readonly #prefix: Uint8Array;
  #carry: Uint8Array = EMPTY;
  #begun = false;
  #ended = false;

  constructor(nonce: string) {
    this.#prefix = encoder.encode(`@@vmr:${nonce}:`);
  }

  /** Whether the end marker has been seen. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Scans the next chunk of the (kernel-filtered) stream. */
  push(chunk: Uint8Array): FrameEvent[] {
    const events: FrameEvent[] = [];
    if (this.#ended) return events;
    // Most chunks hold no "@": all output, or all before the frame.
    if (this.#carry.length === 0 && chunk.indexOf(AT) < 0) {
      if (this.#begun && chunk.length > 0) {
        events.push({ kind: "output", bytes: chunk.slice() });
      }
      return events;
    }
    const data = concat(this.#carry, chunk);
    this.#carry = EMPTY;
    let start = 0;
    let from = 0;
    const emit = (end: number) => {
      if (this.#begun && end > start) {
        events.push({ kind: "output", bytes: data.slice(start, end) });
      }
    };
    while (!this.#ended) {
      const at = data.indexOf(AT, from);
      if (at < 0) break;
      const marker = this.#parseMarker(data, at);
      if (marker === undefined) {
        emit(at);
        this.#carry = data.slice(at);
        return events;
      }
      if (marker === null) {
        from = at + 1;
        continue;
      }
      emit(at);
      start = from = marker.end;
      if (marker.kind === "b") {
        this.#begun = true;
        events.push({ kind: "begin" });
      } else if (marker.kind === "a") {
        // Input is acknowledged before the command starts, too.
        events.push({ kind: "ack", count: marker.value });
      } else if (this.#begun) {
        this.#ended = true;
        events.push({ kind: "end", status: marker.value });
      }
    }
    if (!this.#ended) emit(data.length);
    return events;
  }

  /**
   * The marker at `at`: null if there is none, undefined if the bytes so
   * far cannot tell.
   */
  #parseMarker(
    data: Uint8Array,
    at: number,
  ): { kind: string; value: number; end: number } | null | undefined {
    const prefix = this.#prefix;
    for (let n = 0; n < prefix.length; n++) {
      if (at + n >= data.length) return undefined;
      if (data[at + n] !== prefix[n]) return null;
    }
    let i = at + prefix.length;
    if (i >= data.length) return undefined;
    const kind = String.fromCharCode(data[i++]);
    let value = 0;
    if (kind === "e" || kind === "a") {
      if (i >= data.length) return undefined;
      if (data[i++] !== 0x3a) return null; // ":"
      const digitsStart = i;
      while (i < data.length && isDigit(data[i])) {
        value = value * 10 + data[i++] - 0x30;
      }
      if (i >= data.length) return undefined;
      if (i === digitsStart || i - digitsStart > 9) return null;
    } else if (kind !== "b") {
      return null;
    }
    for (let n = 0; n < 2; n++, i++) {
      if (i >= data.length) return undefined;
      if (data[i] !== AT) return null;
    }
    // Begin and end markers end their line; the newline is not output.
    if (kind !== "a") {
      if (i >= data.length) return undefined;
      if (data[i] === LF) i++;
    }
    return { kind, value, end: i };
  }
}

/** A fresh nonce: 12 random hex digits. */
export function newNonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Shell text that prints a marker. `@` is written as `\100` so that the
 * text itself, should the guest echo it, is no marker. `value` is a shell
 * word whose expansion the marker carries, such as `"$?"`.
 */
export function printMarker(
  nonce: string,
  kind: "b" | "e" | "a" | "s",
  value?: string,
): string {
  const field = value === undefined ? "" : ":%s";
  const newline = kind === "a" ? "" : "\\n";
  const args = value === undefined ? nonce : `${nonce} ${value}`;
  return `printf '\\100\\100vmr:%s:${kind}${field}\\100\\100${newline}' ${args}`;
}
