/**
 * Running vmrunner as a user would, against the test bed: the simulator
 * (found through LD_LIBRARY_PATH, as `deno task start` sets it) and the
 * image built by `deno task image`.
 *
 * @module
 */

import { TEST_BED_RUN_FLAGS } from "../../tools/deno_flags.ts";
import { summarizeTrace, type TraceSummary } from "../hcs-sim/trace.ts";

export const ROOT = new URL("../..", import.meta.url).pathname;

/**
 * The simulator's registry for every vmrunner these tests start, so that
 * `list` and `kill --all` see only their VMs, never those of another suite
 * or of someone's benchmark on the same host, and so that the check that a
 * run left no registry entry looks where the run wrote it.
 */
export const STATE_DIR = Deno.makeTempDirSync({ prefix: "vmrunner-state-" });
globalThis.addEventListener("unload", () => {
  Deno.removeSync(STATE_DIR, { recursive: true });
});

/** What a vmrunner process did. */
export interface RunResult {
  code: number;
  stdout: Uint8Array;
  stderr: string;
  /** The simulator's trace of every HCS call the process made. */
  trace: TraceSummary;
}

/** Options of {@linkcode vmrunner}. */
export interface VmrunnerOptions {
  /** Bytes for stdin; stdin is /dev/null when absent. */
  stdin?: Uint8Array;
  /** Extra environment. */
  env?: Record<string, string>;
  /** Called with the child once it runs (to signal it, say). */
  onSpawn?: (child: Deno.ChildProcess) => void;
  /** Called with all stdout so far, each time more arrives. */
  onStdout?: (soFar: string, child: Deno.ChildProcess) => void;
}

/** Runs `deno run main.ts ...args` and collects what it did. */
export async function vmrunner(
  args: string[],
  options: VmrunnerOptions = {},
): Promise<RunResult> {
  const trace = await Deno.makeTempFile({ prefix: "vmrunner-trace-" });
  try {
    const child = new Deno.Command("deno", {
      args: ["run", ...TEST_BED_RUN_FLAGS, `${ROOT}main.ts`, ...args],
      cwd: ROOT,
      env: {
        HCS_SIM_TRACE: trace,
        HCS_SIM_STATE_DIR: STATE_DIR,
        NO_COLOR: "1",
        ...options.env,
      },
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    options.onSpawn?.(child);
    const writing = (async () => {
      if (!options.stdin) return;
      const writer = child.stdin.getWriter();
      await writer.write(options.stdin);
      await writer.close();
    })();
    const stdout: Uint8Array<ArrayBuffer>[] = [];
    const collecting = (async () => {
      let soFar = "";
      const decoder = new TextDecoder();
      for await (const chunk of child.stdout) {
        stdout.push(chunk as Uint8Array<ArrayBuffer>);
        soFar += decoder.decode(chunk, { stream: true });
        options.onStdout?.(soFar, child);
      }
    })();
    const stderr = new Response(child.stderr).arrayBuffer();
    const [{ code }] = await Promise.all([child.status, writing, collecting]);
    return {
      code,
      stdout: new Uint8Array(await new Blob(stdout).arrayBuffer()),
      stderr: new TextDecoder().decode(await stderr),
      trace: await summarizeTrace(trace),
    };
  } finally {
    await Deno.remove(trace);
  }
}

/** Decodes output as UTF-8. */
export function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** The image built by `deno task image`. */
export const IMAGE_DIR = `${ROOT}vm-image`;

/** Whether any QEMU of the simulator still runs for `id`. */
export async function vmProcessesFor(id: string): Promise<string[]> {
  const { stdout } = await new Deno.Command("ps", {
    args: ["-eo", "pid,args"],
    stdout: "piped",
  }).output();
  return text(stdout).split("\n").filter((line) =>
    line.includes(id) && !line.includes("ps -eo")
  );
}

/** An id nobody else running these tests at the same time will pick. */
export function uniqueId(label: string): string {
  return `${label}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * A real terminal for `vmrunner -i`: a tmux server of its own (one that
 * somebody else started would run the command in its environment), with
 * a shell line that runs `command`, then prints its exit status and
 * whether the terminal is back in canonical mode.
 */
export class Terminal implements AsyncDisposable {
  readonly #name = `vmr-e2e-${crypto.randomUUID().slice(0, 8)}`;

  /** Starts `command` (a shell command line) in a new terminal. */
  static async start(
    command: string,
    size: { columns: number; rows: number },
  ): Promise<Terminal> {
    const terminal = new Terminal();
    await terminal.#tmux(
      "new-session",
      "-d",
      "-s",
      terminal.#name,
      "-x",
      String(size.columns),
      "-y",
      String(size.rows),
      "-c",
      ROOT,
      `${command}; echo "exit=$?"; stty -a | grep -o -- '-\\?icanon'; ` +
        "sleep 600",
    );
    return terminal;
  }

  /** What the terminal shows, scrollback included. */
  async screen(): Promise<string> {
    const shown = await this.#tmux("capture-pane", "-p", "-S", "-200");
    return text(shown.stdout);
  }

  /** Waits (up to 2 minutes) until the screen matches. */
  async waitFor(pattern: RegExp, what: string): Promise<string> {
    for (let i = 0; i < 600; i++) {
      const shown = await this.screen();
      if (pattern.test(shown)) return shown;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`${what} never appeared:\n${await this.screen()}`);
  }

  /** Types keys, in tmux's send-keys notation. */
  async keys(...keys: string[]): Promise<void> {
    await this.#tmux("send-keys", "-t", this.#name, ...keys);
  }

  /** Ends the terminal and its server. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#tmux("kill-server");
  }

  #tmux(...args: string[]) {
    return new Deno.Command("tmux", {
      args: ["-L", this.#name, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
  }
}

/** `deno run` of main.ts with vmrunner's permissions, as a shell line. */
export function vmrunnerCommandLine(
  args: string[],
  env: Record<string, string> = {},
): string {
  const inherited = {
    LD_LIBRARY_PATH: Deno.env.get("LD_LIBRARY_PATH") ?? "",
    HCS_SIM_STATE_DIR: STATE_DIR,
  };
  return [
    ...Object.entries({ ...inherited, ...env }).map(([k, v]) => `${k}=${v}`),
    "deno",
    "run",
    ...TEST_BED_RUN_FLAGS,
    "main.ts",
    ...args,
  ].join(" ");
}
