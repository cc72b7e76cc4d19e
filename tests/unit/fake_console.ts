/**
 * A console transport whose guest is a script: tests decide what the guest
 * prints, and when, in answer to what vmrunner types. For byte streams that
 * no guest here produces (they come from public bug reports).
 *
 * @module
 */

import type { ConsoleTransport } from "../../console/transport.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Decides the guest's answer to each line vmrunner types. */
export type GuestScript = (
  line: string,
  guest: FakeConsole,
) => void | Promise<void>;

/** A scripted guest on the other end of a {@linkcode ConsoleTransport}. */
export class FakeConsole implements ConsoleTransport {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** Everything vmrunner typed, as text. */
  typed = "";
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #pending = "";
  #closed = false;

  constructor(script: GuestScript) {
    this.readable = new ReadableStream({
      start: (controller) => {
        this.#controller = controller;
      },
    });
    this.writable = new WritableStream({
      write: async (chunk) => {
        const text = decoder.decode(chunk);
        this.typed += text;
        this.#pending += text;
        // Lines end with CR (typed at a prompt) or LF (our command loop).
        let match;
        while ((match = /[\r\n]/.exec(this.#pending))) {
          const line = this.#pending.slice(0, match.index);
          this.#pending = this.#pending.slice(match.index + 1);
          await script(line, this);
        }
      },
    });
  }

  /** The guest prints text or bytes. */
  print(output: string | Uint8Array): void {
    if (this.#closed) return;
    this.#controller.enqueue(
      typeof output === "string" ? encoder.encode(output) : output,
    );
  }

  /** The guest prints text in pieces of `size` bytes, to split sequences. */
  printSplit(output: string | Uint8Array, size: number): void {
    const bytes = typeof output === "string" ? encoder.encode(output) : output;
    for (let i = 0; i < bytes.length; i += size) {
      this.print(bytes.slice(i, i + size));
    }
  }

  /** The guest side hangs up. */
  hangUp(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#controller.close();
  }

  close(): Promise<void> {
    this.hangUp();
    return Promise.resolve();
  }
}

/** The probe's reply, if `line` is vmrunner's readiness probe. */
export function probeReply(line: string): string | undefined {
  const match = line.match(/^echo VMR\\RDY([0-9a-f]+)$/);
  return match ? `VMRRDY${match[1]}` : undefined;
}

/**
 * What a POSIX shell's command loop prints for one of vmrunner's framed
 * lines (`__vmr_run NONCE ...`): runs nothing, but answers the markers with
 * `output` and `status`.
 */
export function frameReply(
  line: string,
  output: string,
  status: number,
): string | undefined {
  const nonce = runNonce(line);
  if (!nonce) return undefined;
  return `@@vmr:${nonce}:b@@\n${output}@@vmr:${nonce}:e:${status}@@\n`;
}

/** The nonce of a framed command line, if `line` is one. */
export function runNonce(line: string): string | undefined {
  return line.match(/^__vmr_run ([0-9a-f]+)/)?.[1];
}

/** The framed command lines vmrunner typed into `guest`. */
export function framedLines(guest: FakeConsole): string[] {
  return guest.typed.split(/\r?\n|\r/).filter((line) =>
    runNonce(line) !== undefined
  );
}

/** The sync marker's reply, if `line` is the set-up round trip. */
export function syncReply(line: string): string | undefined {
  const match = line.match(/vmr:%s:s\\100\\100\\n' ([0-9a-f]+)/);
  return match ? `@@vmr:${match[1]}:s@@\n` : undefined;
}
