/**
 * Running commands in the guest over its serial console.
 *
 * Nothing here matches prompts to decide that a command has finished.
 * Instead:
 *
 * 1. Reaching a shell: answer login, password and "press Enter" prompts,
 *    and otherwise send a probe (`echo VMR\RDY<nonce>`) whose reply differs
 *    from its echo, until the reply comes back.
 * 2. Setting up once: the terminal stops echoing and processing output,
 *    kernel messages are kept off the console, and a plain non-interactive
 *    shell loop takes over reading lines, so no prompt, line editor or
 *    bracketed-paste sequence appears again.
 * 3. Each command runs between markers the guest prints (see
 *    `framing.ts`), with its exit status on the end marker and its stdin
 *    from /dev/null unless input is supplied. Input and long or unusual
 *    command text travel base64-encoded in lines the guest acknowledges, so
 *    the guest's line limits and input buffer never overflow.
 * 4. A command quiet for a while is checked on only if the console ends at
 *    a shell prompt, as it does when the command killed the loop: then a
 *    probe that only a shell answers is typed. Otherwise nothing is typed
 *    while a command runs.
 *
 * @module
 */

import { encodeBase64 } from "./base64.ts";
import { type ConsoleChannel, readableText } from "./channel.ts";
import { runsInPlace } from "./in_place.ts";
import {
  FrameScanner,
  KernelMessageFilter,
  newNonce,
  printMarker,
} from "./framing.ts";

/** How to log in when the guest asks. */
export interface Credentials {
  /** The account; `root` when not given. */
  user?: string;
  /** The password, if the account has one. Never logged. */
  password?: string;
}

/** Options of {@linkcode ShellSession}. */
export interface ShellSessionOptions {
  /** Used when the console shows a login prompt. */
  credentials?: Credentials;
  /** How long to wait for a usable shell; default 120 s. */
  readyTimeoutMs?: number;
  /** Receives notes for the user, such as kernel messages removed. */
  warn?: (message: string) => void;
  /** Receives progress details for `-debug` style logs. */
  debug?: (message: string) => void;
  /**
   * Quiet time after which a running command's loop is checked on, if the
   * console then shows a shell prompt; default 3 s.
   */
  livenessCheckMs?: number;
}

/** Where a command's output goes and where its input comes from. */
export interface RunOptions {
  /** Receives the command's output (stdout and stderr, merged). */
  output: (bytes: Uint8Array) => void;
  /** The command's stdin; /dev/null when absent. Read until it ends. */
  input?: ReadableStream<Uint8Array>;
  /** Aborting interrupts the guest command, as Ctrl+C would. */
  signal?: AbortSignal;
}

/** A failure to reach or use the guest's shell. */
export class ConsoleError extends Error {
  /** Always `"ConsoleError"`. */
  override name = "ConsoleError";
  /** The last console lines, for context. */
  readonly consoleTail: string;

  /** Adds the console's last lines to `message`. */
  constructor(message: string, consoleTail: string, options?: ErrorOptions) {
    super(
      consoleTail === ""
        ? `${message}\nThe console showed nothing.`
        : `${message}\nLast console lines:\n${indent(consoleTail)}`,
      options,
    );
    this.consoleTail = consoleTail;
  }
}

function indent(text: string): string {
  return text.split("\n").map((line) => `  | ${line}`).join("\n");
}

/** Exit status reported for a command interrupted from the host. */
export const INTERRUPTED_STATUS = 130;

const encoder = new TextEncoder();

/** Longest command line sent as is; longer ones are transferred. */
const MAX_INLINE_COMMAND = 900;
/** Input bytes per transfer line: 57 bytes make 76 base64 characters. */
const TRANSFER_CHUNK = 57;
/** Transfer lines the guest acknowledges at a time. */
const ACK_EVERY = 8;
/** Transfer lines in flight: stays well inside the tty's 4 KiB buffer. */
const TRANSFER_WINDOW = 2 * ACK_EVERY;

/** Characters of console text the prompt patterns look at. */
const PROMPT_TEXT = 4096;
/** How long {@linkcode ShellSession.ready} waits for a shell, in ms. */
export const DEFAULT_READY_TIMEOUT_MS = 120_000;
/** Quiet time before answering a prompt or probing, in ms. */
const SETTLE_MS = 300;
/** Time between probes while the console is quiet. */
const PROBE_INTERVAL_MS = 1500;
/** Probe even through continuous output after this long. */
const PROBE_ANYWAY_MS = 4000;
/** How long a set-up round trip may take. */
const SYNC_TIMEOUT_MS = 15_000;
/** How long an interrupted command gets to report its status. */
const INTERRUPT_GRACE_MS = 3000;
/** Quiet time after which a running command's loop is checked on. */
const ALIVE_PROBE_MS = 3000;
/** How a shell prompt ends: `root@vm:/# `, busybox's `/ # `, `$ `. */
const SHELL_PROMPT = /[#$%>] ?$/;

/**
 * Whether the console's text ends at what looks like a shell prompt: what
 * a command that killed the command loop leaves, its parent shell's.
 */
function endsAtShellPrompt(text: string): boolean {
  return SHELL_PROMPT.test(text.slice(text.lastIndexOf("\n") + 1));
}
/** How often Ctrl+C is sent again while an interrupted command runs on. */
const INTERRUPT_REPEAT_MS = 1000;

const LOGIN_PROMPT = /(?:^|\n)(?!Last (?:failed )?login)[^\n]*login: *$/;
const PASSWORD_PROMPT = /[Pp]assword: *$/;
const ASK_FIRST = /Please press Enter to activate this console\. *$/;
const LOGIN_INCORRECT = /Login incorrect/;

/**
 * The guest-side shell program that reads and runs our lines. Trapping
 * INT, TERM and HUP lets Ctrl+C or a command's `kill 0` end the running
 * command but not the loop (commands get the default actions back); a
 * `read` that a signal interrupted is retried, anything else ends the loop.
 */
const LOOP =
  'trap : INT TERM HUP; while :; do if IFS= read -r l; then eval "$l"; ' +
  "else [ $? -gt 128 ] || break; fi; done";

/**
 * `__vmr_in NONCE` copies transfer lines from the console to its stdout,
 * decoded: each line is `#` and base64, a lone `#` ends the transfer. The
 * `#` makes a stray line a comment should the loop ever read it. Every
 * `ACK_EVERY` lines it prints an acknowledgement marker to the console.
 */
const INPUT_FUNCTION = "__vmr_in() { while IFS= read -r __d; do " +
  "case $__d in '#') break;; '#'*) printf '%s\\n' \"${__d#?}\"; " +
  `__n=$((__n+1)); [ $((__n%${ACK_EVERY})) -ne 0 ] || ` +
  `${printMarker("$1", "a", "$__n")} >&2;; esac; done | base64 -d; }`;

/**
 * `__vmr_run NONCE [FLAGS] <spaces>#COMMAND` runs one command between
 * markers, so that the line sent for each command is little more than the
 * command: the guest's shell reads a line a byte at a time, some 20 µs a
 * byte under emulation. The command follows the `#`, a comment to the
 * loop's `eval`, and the function takes it from the loop's `l` as it was
 * typed, unquoted. FLAGS: `s`, the command is transferred instead; `i`,
 * input is transferred to its stdin, which is otherwise /dev/null.
 *
 * The command runs through eval in a subshell: a `#`, a stray quote, a
 * syntax error, `exit` or `cd` stay inside it and cannot swallow the end
 * marker or end the loop. `l`, `__k` and the positional parameters hold
 * the nonce: cleared, so that the command cannot forge the end marker by
 * accident or from what the shell gives it. (Nothing in the guest is kept
 * from root: a command that reads the loop's memory through /proc can.)
 * /dev/null is fd 9, opened once at set-up: in the freshly forked child a
 * dup of it took 0.3 ms less than an open (BENCHMARKS.md). A program
 * costs a second fork, as the shell execs in the subshell's place only a
 * command it parsed there, not one `eval` parsed; run as `"$@"` it would
 * be 1.7 ms sooner, but the loop would be its parent, and a program that
 * signals its parent (`kill $PPID`) would stop or kill the loop.
 *
 * With `h`, the command comes as the function's arguments instead and
 * runs in the loop's own shell, with no fork: a builtin that neither
 * changes the shell nor looks at it (`console/in_place.ts`).
 */
const RUN_FUNCTION = "__vmr_run() { __k=$1; __m=$2; __n=0; case $__m in " +
  "h) shift 2;; *) set --; __c=${l#*#}; case $__m in " +
  '*s*) __c=$(__vmr_in "$__k");; esac;; esac; ' +
  `${printMarker('"$__k"', "b")}; case $__m in h) "$@";; ` +
  '*i*) __vmr_in "$__k" | ( unset l __k; eval "$__c" ) 9<&-;; ' +
  '*) ( unset l __k; eval "$__c" ) <&9 9<&-;; esac; ' +
  `${printMarker('"$__k"', "e", "$?")}; }`;

/** A shell on the guest's console, ready to run commands. */
export class ShellSession {
  readonly #channel: ConsoleChannel;
  readonly #options: ShellSessionOptions;
  #ready = false;
  #wasReady = false;
  #busy = false;

  /** Uses `channel`; nothing is sent until the first command. */
  constructor(channel: ConsoleChannel, options: ShellSessionOptions = {}) {
    this.#channel = channel;
    this.#options = options;
  }

  /** Whether the command loop is known to be running. */
  get isReady(): boolean {
    return this.#ready;
  }

  /**
   * Whether a shell was ever reached and set up, even if an interrupted
   * command or a dead loop means it must be set up again.
   */
  get wasReady(): boolean {
    return this.#wasReady;
  }

  /**
   * Reaches a shell and sets it up for commands. Does nothing if that is
   * already done.
   */
  async ready(signal?: AbortSignal): Promise<void> {
    if (this.#ready) return;
    const deadline = Date.now() +
      (this.#options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
    for (let attempt = 1;; attempt++) {
      await this.reachShell(deadline, signal);
      this.#debug("shell reached; setting up the terminal");
      await this.#channel.write(
        "stty -echo -icanon -opost -ixon min 1 time 0 2>/dev/null; " +
          "dmesg -n 1 2>/dev/null; TERM=dumb sh -c " +
          `'${LOOP}'\r`,
      );
      if (await this.#sync(Math.min(SYNC_TIMEOUT_MS, deadline - Date.now()))) {
        this.#ready = this.#wasReady = true;
        return;
      }
      if (attempt >= 3 || Date.now() >= deadline) {
        throw new ConsoleError(
          "The guest's shell did not take the command loop",
          this.#channel.tail(),
        );
      }
      this.#debug("set-up did not answer; probing again");
    }
  }

  /**
   * Waits until a shell answers a probe, logging in on the way if asked.
   * Leaves the shell as it is; {@linkcode ShellSession.ready} sets it up.
   */
  async reachShell(deadline: number, signal?: AbortSignal): Promise<void> {
    const nonce = newNonce();
    const reply = `VMRRDY${nonce}`;
    // The backslash makes the reply differ from the probe's echo. Quotes
    // would too, but a probe cut short would leave one open, and every
    // later probe would then sit at the shell's continuation prompt; a cut
    // backslash merely joins two probes, whose reply still comes back.
    const probe = `echo VMR\\RDY${nonce}\r`;
    const { user = "root", password } = this.#options.credentials ?? {};
    // A prompt may have arrived before anybody listened.
    let text = this.#channel.recentText().slice(-PROMPT_TEXT);
    // The console comes a byte at a time while the guest boots, so each
    // chunk gets only cheap work: the reply is looked for in a short tail,
    // and the text for the prompt patterns is trimmed now and then rather
    // than copied on every byte.
    let tail = "";
    let answered = false;
    let wake: () => void = () => {};
    const stop = this.#channel.listen((chunk) => {
      const piece = readableText(chunk);
      tail = tail.slice(-reply.length) + piece;
      answered ||= tail.includes(reply);
      text += piece;
      if (text.length > 2 * PROMPT_TEXT) text = text.slice(-PROMPT_TEXT);
      if (answered) wake();
    });
    // Prompts are answered only once the console is quiet, so the loop
    // looks every 100 ms rather than on every chunk.
    const ticker = setInterval(() => wake(), 100);
    // Probe once the console settles, not into the middle of a boot, and
    // not soon after an answer: a login still working on the user name
    // would take the probe for the password.
    let lastTyped = Date.now() - PROBE_INTERVAL_MS;
    let logins = 0;
    try {
      while (!answered) {
        signal?.throwIfAborted();
        if (this.#channel.isEnded) {
          throw new ConsoleError(
            "The console closed before a shell answered",
            this.#channel.tail(),
          );
        }
        const now = Date.now();
        if (now >= deadline) {
          throw new ConsoleError(
            this.#wasReady
              // The loop answered before: what holds the console now is
              // most likely a command it ran, stopped or hung.
              ? "The shell on the console no longer answers: a program an " +
                "earlier command left there (stopped by SIGSTOP, or deaf " +
                "to Ctrl+C) may hold it. Boot a new VM"
              : "No shell answered on the console in time. Check that the " +
                "kernel command line has console=ttyS0 and that the guest " +
                "starts a shell or a login prompt there",
            this.#channel.tail(),
          );
        }
        const quiet = now - this.#channel.lastDataAt >= SETTLE_MS;
        if (quiet) text = text.slice(-PROMPT_TEXT);
        if (quiet && ASK_FIRST.test(text)) {
          this.#debug("answering the activation prompt");
          text = "";
          lastTyped = now;
          await this.#channel.write("\r");
        } else if (quiet && PASSWORD_PROMPT.test(text)) {
          if (password === undefined) {
            throw new ConsoleError(
              `The guest asks for the password of "${user}". Pass ` +
                "--password, or set VMRUNNER_PASSWORD",
              this.#channel.tail(),
            );
          }
          this.#debug("sending the password");
          text = "";
          lastTyped = now;
          await this.#channel.write(`${password}\r`);
        } else if (quiet && LOGIN_PROMPT.test(text)) {
          if (++logins > 3 || (logins > 1 && LOGIN_INCORRECT.test(text))) {
            throw new ConsoleError(
              `The guest did not accept the login of "${user}". Check ` +
                "--user and --password (or VMRUNNER_USER and " +
                "VMRUNNER_PASSWORD)",
              this.#channel.tail(),
            );
          }
          this.#debug(`logging in as ${user}`);
          text = "";
          lastTyped = now;
          await this.#channel.write(`${user}\r`);
        } else if (
          (quiet && now - lastTyped >= PROBE_INTERVAL_MS) ||
          now - lastTyped >= PROBE_ANYWAY_MS
        ) {
          lastTyped = now;
          await this.#channel.write(probe);
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      clearInterval(ticker);
      stop();
    }
  }

  /**
   * Runs a shell command line in the guest and returns its exit status.
   * The command runs in a subshell (or, if it is a builtin that changes
   * nothing, as if it did): `cd` or variables do not carry over to the next
   * command, and its stdin is /dev/null unless `options.input` is given.
   */
  async run(command: string, options: RunOptions): Promise<number> {
    if (this.#busy) {
      throw new Error("Cannot run two commands at once on one console");
    }
    this.#busy = true;
    try {
      await this.ready(options.signal);
      return await this.#run(command, options);
    } finally {
      this.#busy = false;
    }
  }

  async #run(command: string, options: RunOptions): Promise<number> {
    const nonce = newNonce();
    const inline = fitsOnLine(command);
    const line = commandLine(
      nonce,
      command,
      inline,
      options.input !== undefined,
    );

    const kernel = new KernelMessageFilter();
    const frame = new FrameScanner(nonce);
    let acked = 0;
    let status: number | undefined;
    // Wakes everything waiting for the stream to move on.
    let waiting: (() => void)[] = [];
    const notify = () => {
      const wake = waiting;
      waiting = [];
      for (const resolve of wake) resolve();
    };
    const changed = () => new Promise<void>((resolve) => waiting.push(resolve));
    // Asked while the command runs quietly: answered at once only by a
    // shell that took over the console because the loop died (a command
    // may kill its parent shell); the live loop reads it after the end.
    const alive = `VMRALIVE${nonce}`;
    let aliveTail = "";
    let aliveAsked = false;
    let loopDied = false;
    const stop = this.#channel.listen((chunk) => {
      // Only once asked can the answer come: until then output, megabytes
      // of it perhaps, is not decoded for it.
      if (aliveAsked && !loopDied) {
        aliveTail = aliveTail.slice(-alive.length) + readableText(chunk);
        if (aliveTail.includes(alive)) {
          loopDied = true;
          notify();
        }
      }
      const { data, messages } = kernel.push(chunk);
      for (const message of messages) {
        this.#options.warn?.(`guest kernel: ${message.trim()}`);
      }
      let moved = false;
      for (const event of frame.push(data)) {
        if (event.kind === "output") options.output(event.bytes);
        else if (event.kind === "ack") acked = event.count;
        else if (event.kind === "end") status = event.status;
        moved ||= event.kind !== "output";
      }
      // Output alone changes nothing anybody waits for.
      if (moved) notify();
    });

    if (options.signal?.aborted) {
      stop();
      return INTERRUPTED_STATUS;
    }
    let interrupted = false;
    let interruptedAt = 0;
    let lastCtrlC = 0;
    const sendCtrlC = () => {
      lastCtrlC = Date.now();
      this.#channel.write("\x03").catch(() => {});
    };
    const interrupt = () => {
      interrupted = true;
      interruptedAt = Date.now();
      sendCtrlC();
      notify();
    };
    options.signal?.addEventListener("abort", interrupt, { once: true });
    const input = options.input?.getReader();
    // The console's end and the interrupt's deadlines are not events of the
    // stream: look every 200 ms. One timer for the run, not one per chunk
    // (megabytes of output come in tens of thousands of chunks).
    const ticker = setInterval(notify, 200);
    try {
      await this.#channel.write(line);
      // Input goes on in the background: the command may end, or be
      // interrupted, before it has read everything.
      let sent = 0;
      const finished = () =>
        status !== undefined || interrupted || this.#channel.isEnded;
      const send = async (lines: AsyncIterable<string>) => {
        for await (const transferLine of lines) {
          while (sent - acked >= TRANSFER_WINDOW && !finished()) {
            await changed();
          }
          if (finished()) return;
          await this.#channel.write(transferLine);
          sent++;
        }
        if (!finished()) await this.#channel.write("#\n");
      };
      const sending = (async () => {
        if (!inline) await send(transferLines(bytesOf(command)));
        if (input) await send(transferLines(chunksOf(input)));
      })().catch((error) => {
        this.#options.warn?.(`Cannot pass input to the guest: ${error}`);
      });

      // Unanswered probes wait in the guest's tty buffer for the loop, so
      // they thin out: 3 s, 6 s, 12 s ... apart, at most a minute.
      const checkAfterMs = this.#options.livenessCheckMs ?? ALIVE_PROBE_MS;
      let lastAliveProbe = Date.now();
      let aliveInterval = checkAfterMs;
      let promptCheckedAt = -1;
      let atPrompt = false;
      while (status === undefined) {
        if (this.#channel.isEnded) {
          throw new ConsoleError(
            "The console closed while the command was running",
            this.#channel.tail(),
          );
        }
        if (loopDied) {
          this.#ready = false;
          await input?.cancel();
          throw new ConsoleError(
            "The command ended the shell vmrunner runs commands in (did " +
              "it kill its parent?), so its exit status is unknown",
            this.#channel.tail(),
          );
        }
        const lastDataAt = this.#channel.lastDataAt;
        const quietFor = Date.now() - lastDataAt;
        // The probe is typed into the console, where a command that reads
        // /dev/tty (a password or yes/no prompt) would take it as its
        // answer: it is sent only when the console shows a shell prompt,
        // as it does once the loop has died and its parent shell is back.
        // The console is read again only once something new arrived.
        const due = !interrupted && quietFor >= checkAfterMs &&
          Date.now() - lastAliveProbe >= aliveInterval;
        if (due && lastDataAt !== promptCheckedAt) {
          promptCheckedAt = lastDataAt;
          atPrompt = endsAtShellPrompt(this.#channel.recentText());
        }
        if (due && atPrompt) {
          lastAliveProbe = Date.now();
          aliveInterval = Math.min(2 * aliveInterval, 60_000);
          aliveAsked = true;
          await this.#channel.write(`echo VMR\\ALIVE${nonce}\n`);
        }
        if (interrupted) {
          const now = Date.now();
          if (now - interruptedAt >= INTERRUPT_GRACE_MS) {
            // The loop did not report back; set it up again next time.
            this.#ready = false;
            await input?.cancel();
            return INTERRUPTED_STATUS;
          }
          // A program that catches one Ctrl+C may stop at the next.
          if (now - lastCtrlC >= INTERRUPT_REPEAT_MS) sendCtrlC();
        }
        await changed();
      }
      await input?.cancel();
      await sending;
      return status;
    } finally {
      clearInterval(ticker);
      options.signal?.removeEventListener("abort", interrupt);
      input?.releaseLock();
      stop();
    }
  }

  async #sync(timeoutMs: number): Promise<boolean> {
    const nonce = newNonce();
    const expected = `@@vmr:${nonce}:s@@`;
    let tail = "";
    let seen!: () => void;
    const arrived = new Promise<void>((resolve) => (seen = resolve));
    const stop = this.#channel.listen((chunk) => {
      // A tail as long as the marker finds it split across chunks.
      tail = tail.slice(-expected.length) + readableText(chunk);
      if (tail.includes(expected)) seen();
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      // The line speed means nothing to a virtual UART but this: input
      // below its FIFO's trigger level is reported after four characters'
      // time of silence, 4 ms at the 9600 baud a serial console starts
      // with, 0.35 ms at 115200. Any line can end in such a remainder.
      await this.#channel.write(
        `${INPUT_FUNCTION}; ${RUN_FUNCTION}; exec 9</dev/null; ` +
          "stty 115200 2>/dev/null; " +
          `${printMarker(nonce, "s")}\n`,
      );
      return await Promise.race([
        arrived.then(() => true),
        new Promise<boolean>((resolve) => {
          // Cleared below, so that no timer outlives the set-up.
          timer = setTimeout(() => resolve(false), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      stop();
    }
  }

  #debug(message: string) {
    this.#options.debug?.(message);
  }
}

/**
 * The line that has the command loop run `command` (see `RUN_FUNCTION`),
 * which travels in it if `inline`, else is transferred after it; padded
 * for the UART: its model raises the receive interrupt once its
 * FIFO holds 8 bytes, and a last load of fewer waits four characters' time
 * (0.35 ms at 115200 baud). Spaces make the line a whole number of loads.
 */
function commandLine(
  nonce: string,
  command: string,
  inline: boolean,
  withInput: boolean,
): string {
  const inPlace = inline && !withInput && runsInPlace(command);
  const flags = inPlace ? "h" : (inline ? "" : "s") + (withInput ? "i" : "");
  const tail = inPlace ? command : inline ? `#${command}` : "";
  const head = `__vmr_run ${nonce}${flags === "" ? "" : ` ${flags}`} `;
  const length = encoder.encode(`${head}${tail}\n`).length;
  return `${head}${" ".repeat((8 - length % 8) % 8)}${tail}\n`;
}

/** Whether `command` can travel in the line that runs it. */
function fitsOnLine(command: string): boolean {
  return command.length <= MAX_INLINE_COMMAND && isPlainLine(command);
}

/** Whether text can travel as one line the guest's shell reads as typed. */
function isPlainLine(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f) return false;
  }
  return true;
}

async function* bytesOf(text: string): AsyncIterable<Uint8Array> {
  yield encoder.encode(text);
}

async function* chunksOf(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): AsyncIterable<Uint8Array> {
  while (true) {
    const { done, value } = await reader.read();
    if (done) return;
    yield value;
  }
}

/** Splits a byte stream into `#`-prefixed base64 lines. */
async function* transferLines(
  source: AsyncIterable<Uint8Array>,
): AsyncIterable<string> {
  let pending = new Uint8Array(0);
  for await (const chunk of source) {
    const joined = new Uint8Array(pending.length + chunk.length);
    joined.set(pending);
    joined.set(chunk, pending.length);
    let offset = 0;
    while (joined.length - offset >= TRANSFER_CHUNK) {
      yield `#${
        encodeBase64(joined.subarray(offset, offset + TRANSFER_CHUNK))
      }\n`;
      offset += TRANSFER_CHUNK;
    }
    pending = joined.slice(offset);
  }
  if (pending.length > 0) yield `#${encodeBase64(pending)}\n`;
}
