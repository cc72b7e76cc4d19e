/**
 * The guest-side shell text (the command loop, `__vmr_run`, `__vmr_in`)
 * run by real POSIX shells on this host: dash, and busybox ash (the test
 * image's /bin/sh); `deno task setup` installs both. A pipe stands in for
 * the console; `stty` and `dmesg` are stubbed, so nothing changes the host.
 */

import assert from "node:assert/strict";
import { ConsoleChannel } from "../../console/channel.ts";
import { ShellSession } from "../../console/shell_session.ts";
import type { ConsoleTransport } from "../../console/transport.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The shell at the other end of the console: it reads what is typed a
 * line at a time, as an interactive shell does, with the terminal's CR to
 * LF translation done here.
 */
class ShellGuest implements ConsoleTransport {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** Everything typed, as text. */
  typed = "";
  readonly #child: Deno.ChildProcess;
  readonly #stubs: string;

  constructor(shell: string[]) {
    this.#stubs = Deno.makeTempDirSync({ prefix: "vmr-guest-shell-" });
    const stub = (name: string, body: string) => {
      Deno.writeTextFileSync(`${this.#stubs}/${name}`, `#!/bin/sh\n${body}\n`);
      Deno.chmodSync(`${this.#stubs}/${name}`, 0o755);
    };
    stub("stty", "exit 0");
    stub("dmesg", "exit 0");
    // The set-up starts the loop with `sh`: the shell under test.
    stub("sh", `exec ${shell.join(" ")} "$@"`);
    this.#child = new Deno.Command(shell[0], {
      args: [
        ...shell.slice(1),
        "-c",
        'exec 2>&1; while IFS= read -r l; do eval "$l"; done',
      ],
      cwd: "/",
      env: { PATH: `${this.#stubs}:/usr/bin:/bin` },
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.readable = this.#child.stdout;
    const stdin = this.#child.stdin.getWriter();
    this.writable = new WritableStream({
      write: async (chunk) => {
        const text = decoder.decode(chunk);
        this.typed += text;
        await stdin.write(encoder.encode(text.replaceAll("\r", "\n")));
      },
      close: () => stdin.close(),
    });
  }

  async close(): Promise<void> {
    await this.writable.close().catch(() => {});
    await this.#child.status;
    Deno.removeSync(this.#stubs, { recursive: true });
  }

  /** The nonce of the last command line typed. */
  lastNonce(): string {
    const nonces = [...this.typed.matchAll(/__vmr_run ([0-9a-f]+)/g)];
    return nonces[nonces.length - 1][1];
  }
}

function has(program: string): boolean {
  try {
    Deno.statSync(program);
    return true;
  } catch {
    return false;
  }
}

const SHELLS: [string, string[]][] = [
  ["dash", ["/bin/dash"]],
  ["busybox ash", ["/bin/busybox", "sh"]],
];

for (const [name, shell] of SHELLS) {
  Deno.test({
    name: `The guest-side shell text keeps its guarantees under ${name}`,
    fn: async () => {
      assert.ok(
        has(shell[0]),
        `${shell[0]} is missing: \`deno task setup\` installs it`,
      );
      const guest = new ShellGuest(shell);
      const channel = new ConsoleChannel(guest);
      const session = new ShellSession(channel, { readyTimeoutMs: 20_000 });
      const run = async (command: string, input?: string) => {
        const chunks: Uint8Array[] = [];
        const status = await session.run(command, {
          output: (bytes) => chunks.push(bytes),
          input: input === undefined ? undefined : new Blob([input]).stream(),
        });
        return {
          status,
          output: chunks.map((c) => decoder.decode(c)).join(""),
        };
      };
      try {
        assert.deepEqual(await run("exit 3"), { status: 3, output: "" });
        // A comment, a stray quote or a syntax error stays in the command.
        assert.deepEqual(await run("echo a # b"), { status: 0, output: "a\n" });
        assert.notEqual((await run("echo 'open")).status, 0);
        assert.notEqual((await run("if then")).status, 0);
        // Nothing carries over to the next command.
        await run("cd /tmp; x=1; set -e");
        assert.deepEqual(await run('pwd; echo "[$x]"; false; echo on'), {
          status: 0,
          output: "/\n[]\non\n",
        });
        // Neither variables nor arguments give the nonce away.
        const dump = await run('set; echo "$# $* $l"');
        assert.equal(dump.status, 0);
        assert.ok(!dump.output.includes(guest.lastNonce()), dump.output);
        assert.match(dump.output, /^0 {2}$/m);
        // stdin is /dev/null, and the fd the loop keeps it on is closed.
        assert.deepEqual(
          await run("cat; (: <&9) 2>/dev/null && echo open || echo closed"),
          { status: 0, output: "closed\n" },
        );
        // Input, and a command that has to be transferred, with input.
        assert.deepEqual(await run("cat; exit 4", "one\ntwo\n"), {
          status: 4,
          output: "one\ntwo\n",
        });
        const many = "line of input\n".repeat(200);
        assert.deepEqual(await run("cat\necho 'x\ty'", many), {
          status: 0,
          output: `${many}x\ty\n`,
        });
        // A builtin that runs in place (`console/in_place.ts`) gets its
        // words as the shell reads them; any other command of plain words
        // keeps the subshell, and its parent is that subshell.
        assert.deepEqual(await run("'cd' '/tmp'"), { status: 0, output: "" });
        assert.deepEqual(await run("'pwd'"), { status: 0, output: "/\n" });
        assert.deepEqual(await run("echo a\\ b  'it'\\''s' ''"), {
          status: 0,
          output: "a b it's \n",
        });
        assert.deepEqual(await run("false"), { status: 1, output: "" });
        assert.equal((await run("no-such-program x")).status, 127);
        assert.deepEqual(await run("eval 'echo $#'"), {
          status: 0,
          output: "0\n",
        });
        assert.equal((await run("sh -c 'kill -9 $PPID'")).status, 137);
        assert.deepEqual(await run("printf '%s\\n' \"$((6 * 7))\""), {
          status: 0,
          output: "42\n",
        });
      } finally {
        await channel.close();
      }
    },
  });
}
