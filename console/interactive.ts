/**
 * An interactive terminal on the guest's console: the host terminal in raw
 * mode, bytes copied both ways, and an escape sequence to leave.
 *
 * @module
 */

import type { ConsoleChannel } from "./channel.ts";
import type { ShellSession } from "./shell_session.ts";

/** The key that starts the escape sequence: Ctrl+]. */
export const ESCAPE_KEY = 0x1d;
/** The key that, after {@linkcode ESCAPE_KEY}, leaves the session. */
export const LEAVE_KEY = 0x71; // "q"
/** How the escape sequence is shown to the user. */
export const ESCAPE_HELP = "Ctrl+] then q";

/** The host side of the session. */
export interface TerminalIO {
  /** Keys or piped input. */
  input: ReadableStream<Uint8Array>;
  /** Receives the console's output. */
  output: (bytes: Uint8Array) => void;
  /** The host terminal's size, when input is a terminal. */
  size?: { columns: number; rows: number };
  /** Puts the host terminal in raw mode and back; absent for pipes. */
  setRaw?: (raw: boolean) => void;
  /** Ends the session from outside (a signal, the VM exiting). */
  signal?: AbortSignal;
}

/** How long the console must stay quiet after piped input ends. */
const DRAIN_MS = 1500;

/**
 * Connects the host terminal to the console until the user leaves, piped
 * input ends and the guest falls quiet, the console closes, or `signal`
 * aborts. The host terminal is restored on every way out.
 */
export async function attachTerminal(
  channel: ConsoleChannel,
  shell: ShellSession,
  io: TerminalIO,
  deadline: number,
): Promise<void> {
  await shell.reachShell(deadline, io.signal);
  if (io.size) {
    // A serial line carries no window size: tell the guest's tty once.
    await channel.write(
      `stty rows ${io.size.rows} cols ${io.size.columns}\r`,
    );
  }
  const stop = channel.listen((chunk) => io.output(chunk));
  const leave = new AbortController();
  const onAbort = () => leave.abort();
  io.signal?.addEventListener("abort", onAbort, { once: true });
  channel.ended.then(onAbort);
  const reader = io.input.getReader();
  io.setRaw?.(true);
  try {
    const ended = new Promise<void>((resolve) =>
      leave.signal.addEventListener("abort", () => resolve(), { once: true })
    );
    let escaped = false;
    let lastWrite = Date.now();
    while (!leave.signal.aborted) {
      const next = await Promise.race([
        reader.read(),
        ended.then(() => undefined),
      ]);
      if (next === undefined) break;
      if (next.done) {
        await drain(channel, lastWrite, leave.signal);
        break;
      }
      const { bytes, leaving, pendingEscape } = scanEscape(
        next.value,
        escaped,
      );
      escaped = pendingEscape;
      if (bytes.length > 0) {
        await channel.write(bytes);
        lastWrite = Date.now();
      }
      if (leaving) break;
    }
  } finally {
    io.setRaw?.(false);
    io.signal?.removeEventListener("abort", onAbort);
    stop();
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/**
 * Finds the escape sequence in typed bytes. Returns what to send on, and
 * whether the user left. A lone Ctrl+] waits for the next key; Ctrl+]
 * twice sends one Ctrl+] to the guest.
 */
export function scanEscape(
  typed: Uint8Array,
  escaped: boolean,
): { bytes: Uint8Array; leaving: boolean; pendingEscape: boolean } {
  const out: number[] = [];
  for (const byte of typed) {
    if (escaped) {
      escaped = false;
      if (byte === LEAVE_KEY) {
        return {
          bytes: new Uint8Array(out),
          leaving: true,
          pendingEscape: false,
        };
      }
      out.push(ESCAPE_KEY);
      if (byte !== ESCAPE_KEY) out.push(byte);
    } else if (byte === ESCAPE_KEY) {
      escaped = true;
    } else {
      out.push(byte);
    }
  }
  return { bytes: new Uint8Array(out), leaving: false, pendingEscape: escaped };
}

/** Waits until the console has been quiet for a moment since our input. */
async function drain(
  channel: ConsoleChannel,
  lastWrite: number,
  signal: AbortSignal,
) {
  const lastActivity = () => Math.max(channel.lastDataAt, lastWrite);
  while (!signal.aborted && Date.now() - lastActivity() < DRAIN_MS) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
