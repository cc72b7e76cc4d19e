/**
 * `vmrunner -i` on a real console under Wine: the Windows deno runs in a
 * tmux pane (a pty, which Wine turns into a Windows console), so stdin is
 * a terminal, the console is put in raw mode and measured, and keys are
 * typed as a user types them.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { summarizeTrace } from "../../hcs-sim/trace.ts";
import { SIM_BUILD_DIR } from "../../wine/paths.ts";
import {
  DENO_WIN,
  denoRunArgs,
  ROOT,
  vmGone,
  windowsPath,
  WINE_CACHE,
} from "./helpers.ts";

/** Shell-quotes one word. */
function quote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** A tmux server of our own, with one pane. */
class Pane {
  readonly #socket = `vmrunner-win-${Deno.pid}`;

  async #tmux(...args: string[]): Promise<string> {
    const { code, stdout, stderr } = await new Deno.Command("tmux", {
      args: ["-L", this.#socket, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(stdout);
    if (code !== 0) {
      throw new Error(
        `tmux ${args[0]} failed: ${new TextDecoder().decode(stderr)}`,
      );
    }
    return out;
  }

  /** Starts `command` in a 100x30 pane. */
  start(command: string): Promise<string> {
    return this.#tmux(
      "new-session",
      "-d",
      "-s",
      "vmrunner",
      "-x",
      "100",
      "-y",
      "30",
      command,
    );
  }

  /** Types keys (tmux key names, such as Enter or C-c). */
  keys(...keys: string[]): Promise<string> {
    return this.#tmux("send-keys", "-t", "vmrunner", ...keys);
  }

  /** The pane's text, with its history. */
  text(): Promise<string> {
    return this.#tmux("capture-pane", "-p", "-t", "vmrunner", "-S", "-500");
  }

  /** Waits until the pane's text matches `pattern`. */
  async waitFor(pattern: RegExp, ms = 300_000): Promise<string> {
    const deadline = Date.now() + ms;
    let text = "";
    while (Date.now() < deadline) {
      text = await this.text();
      if (pattern.test(text)) return text;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`the pane never showed ${pattern}; it shows:\n${text}`);
  }

  /** Ends the pane and its server, whatever runs in it. */
  async close(): Promise<void> {
    await this.#tmux("kill-server").catch(() => {});
  }
}

// Not typed here: Ctrl+C, which a raw Windows console passes on as the
// byte 0x03. Wine's console returns an empty read for it instead (checked
// with Deno.stdin.read under Wine 10), which ends piped-style input.
Deno.test("vmrunner -i on a Windows console: keys in raw mode, the console's size, Ctrl+] q to leave", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vmrunner-console-" });
  const trace = join(dir, "trace.jsonl");
  const status = join(dir, "status");
  const id = `win-e2e-console-${Deno.pid}`;
  const script = join(dir, "run.sh");
  await Deno.writeTextFile(
    script,
    [
      "#!/bin/sh",
      `export WINEDEBUG=-all NO_COLOR=1`,
      `export DENO_DIR=${quote(windowsPath(`${WINE_CACHE}/deno-dir`))}`,
      `export WINEPATH=${quote(windowsPath(SIM_BUILD_DIR))}`,
      `export HCS_SIM_TRACE=${quote(windowsPath(trace))}`,
      `cd ${quote(ROOT)}`,
      [DENO_WIN, ...denoRunArgs(), "-i", "--read-only", "-id", id]
        .map(quote).join(" "),
      `echo $? > ${quote(status)}`,
      // Keep the pane (and its text) until the test closes it.
      "exec sleep 600",
    ].join("\n") + "\n",
  );
  const pane = new Pane();
  try {
    await pane.start(`sh ${quote(script)}`);
    // Deno.consoleSize() measured Wine's console, 100x30, and the prompt
    // after that command is up. What follows the prompt is not matched:
    // busybox asks for the cursor position (ESC [ 6 n), and when the
    // sequence comes split across two writes, Wine's console shows its
    // end ("6n") as text (once in some 15 runs).
    await pane.waitFor(
      /connected to .*console[\s\S]*stty rows 30 cols 100\s*\n[^\n]*root@vm:[^\n]*#/,
    );

    await pane.keys("echo $((6*7))-typed; tty", "Enter");
    await pane.waitFor(/^42-typed\s*\n\/dev\/ttyS0/m, 30_000);

    // Ctrl+] then q, with no Enter: only a console in raw mode passes
    // them on at once. vmrunner leaves, stops the VM and exits 0.
    await pane.keys("C-]", "q");
    await pane.waitFor(/left .*console/, 60_000);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const done = await Deno.readTextFile(status).catch(() => "");
      if (done) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.equal((await Deno.readTextFile(status)).trim(), "0");
    const summary = await summarizeTrace(trace);
    assert.ok(summary.systemHandlesOpened > 0, "the trace saw the run");
    assert.deepEqual(summary.leaks, [], "nothing left open");
    assert.deepEqual(await vmGone(id), [], "no VM left running");
  } finally {
    await pane.close();
    await Deno.remove(dir, { recursive: true });
  }
});
