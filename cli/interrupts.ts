/**
 * Ctrl+C and its relatives. The first interrupt asks for an orderly end
 * (the guest command is interrupted, the VM shut down); the second forces
 * termination at once; a third exits on the spot, and HCS still ends the
 * VM when our last handle closes with the process. One Ctrl+C that comes
 * twice, from two senders, counts once.
 *
 * @module
 */

import { EXIT } from "./exit_codes.ts";

/** Signals vmrunner handles, with the exit status each leads to. */
const SIGNALS: [Deno.Signal, number][] = Deno.build.os === "windows"
  ? [
    ["SIGINT", EXIT.INTERRUPTED],
    ["SIGBREAK", EXIT.INTERRUPTED],
    // Closing the console window; Windows allows little time for it.
    ["SIGHUP", EXIT.TERMINATED],
  ]
  : [
    ["SIGINT", EXIT.INTERRUPTED],
    ["SIGTERM", EXIT.TERMINATED],
    ["SIGHUP", EXIT.TERMINATED],
  ];

/**
 * The same signal again this soon is the same Ctrl+C, delivered twice: the
 * terminal sends it to the whole process group, and a parent such as
 * `deno task` passes its own copy on. Nobody presses twice this fast.
 */
const SAME_PRESS_MS = 100;

/** The interrupts of one run. */
export class Interrupts implements Disposable {
  /** Aborts at the first interrupt. */
  readonly stop = new AbortController();
  /** Aborts at the second: skip the graceful shutdown. */
  readonly force = new AbortController();
  /** The exit status the first interrupt asks for, once there was one. */
  status: number | undefined;
  #count = 0;
  #last: { signal: Deno.Signal; at: number } | undefined;
  #handlers: [Deno.Signal, () => void][] = [];
  #onInterrupt: (signal: Deno.Signal, count: number) => void;

  constructor(onInterrupt: (signal: Deno.Signal, count: number) => void) {
    this.#onInterrupt = onInterrupt;
    for (const [signal, status] of SIGNALS) {
      const handler = () => this.#interrupt(signal, status);
      try {
        Deno.addSignalListener(signal, handler);
        this.#handlers.push([signal, handler]);
      } catch {
        // Not every system knows every signal; those it lacks never come.
      }
    }
  }

  #interrupt(signal: Deno.Signal, status: number) {
    const now = performance.now();
    const last = this.#last;
    if (last?.signal === signal && now - last.at < SAME_PRESS_MS) return;
    this.#last = { signal, at: now };
    this.#count++;
    this.#onInterrupt(signal, this.#count);
    if (this.#count === 1) {
      this.status = status;
      this.stop.abort(new Interrupted(signal, status));
    } else if (this.#count === 2) {
      this.force.abort(new Interrupted(signal, status));
    } else {
      Deno.exit(this.status ?? status);
    }
  }

  /** Removes the signal listeners. */
  [Symbol.dispose](): void {
    for (const [signal, handler] of this.#handlers) {
      Deno.removeSignalListener(signal, handler);
    }
    this.#handlers = [];
  }
}

/** The reason an interrupted run was aborted. */
export class Interrupted extends Error {
  /** Always `"Interrupted"`. */
  override name = "Interrupted";
  /** The exit status this interrupt leads to. */
  readonly status: number;

  constructor(signal: Deno.Signal, status: number) {
    super(`Interrupted by ${signal}`);
    this.status = status;
  }
}
