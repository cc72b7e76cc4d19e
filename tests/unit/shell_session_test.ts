/**
 * Reaching a shell and running commands against scripted guests: the byte
 * streams of public bug reports (../shared/reference/SERIAL.md) that no
 * guest of the test bed produces.
 */

import assert from "node:assert/strict";
import { ConsoleChannel } from "../../console/channel.ts";
import { ConsoleError, ShellSession } from "../../console/shell_session.ts";
import {
  FakeConsole,
  framedLines,
  frameReply,
  type GuestScript,
  probeReply,
  runNonce,
  syncReply,
} from "./fake_console.ts";

/** A guest already at a shell prompt, with a command loop behind it. */
function shellGuest(
  prompt = "root@vm:/# ",
  run: (line: string) => [string, number] = () => ["", 0],
): GuestScript {
  return (line, guest) => {
    const reply = probeReply(line) ?? syncReply(line);
    if (reply) return guest.print(`${line}\r\n${reply}\r\n${prompt}`);
    const [output, status] = run(line);
    const framed = frameReply(line, output, status);
    if (framed) guest.print(framed);
  };
}

function session(
  guest: FakeConsole,
  options: ConstructorParameters<typeof ShellSession>[1] = {},
) {
  const channel = new ConsoleChannel(guest);
  return { channel, shell: new ShellSession(channel, options) };
}

const decoder = new TextDecoder();

Deno.test("ShellSession finds the probe reply inside bracketed paste codes (labgrid #969)", async () => {
  const guest = new FakeConsole((line, guest) => {
    const reply = probeReply(line);
    // bash 5.1: the reply, then the prompt wrapped in bracketed paste.
    if (reply) {
      guest.print(
        `${line}\r\n\x1b[?2004l\r${reply}\r\n\x1b[?2004hroot@h:~# `,
      );
    }
    const sync = syncReply(line);
    if (sync) guest.print(sync);
  });
  const { channel, shell } = session(guest);
  await shell.ready();
  assert.ok(shell.isReady);
  await channel.close();
});

Deno.test("ShellSession answers a login prompt torn by boot output (kubevirt #4623)", async () => {
  let loggedIn = false;
  const guest = new FakeConsole((line, guest) => {
    if (!loggedIn && line === "root") {
      loggedIn = true;
      return guest.print("root\r\nroot@vm:~# ");
    }
    if (loggedIn) return shellGuest()(line, guest);
  });
  guest.print(
    "testvmi-sq4t7nk6fnrpCloud-init v. 19.4 running 'modules:final' at " +
      "Mon, 01 Jun 2020. Up 74.29 seconds. login: ",
  );
  const { channel, shell } = session(guest);
  await shell.ready();
  assert.ok(loggedIn);
  await channel.close();
});

Deno.test("ShellSession does not take a 'Last login:' line for a prompt (kubevirt login.go)", async () => {
  const guest = new FakeConsole(shellGuest());
  // The line stops right after "login: " for longer than the settle time.
  guest.print("\r\nLast failed login: ");
  const { channel, shell } = session(guest);
  await new Promise((resolve) => setTimeout(resolve, 700));
  guest.print("Tue Jun  9 22:25:30 UTC 2020 on ttyS0\r\nroot@vm:~# ");
  await shell.ready();
  assert.ok(!guest.typed.includes("root\r"), "no user name was typed");
  await channel.close();
});

/**
 * A getty that wants user `test` with password `s3cret`, and shows its
 * password prompt `passwordAfterMs` after echoing the user name.
 */
function passwordGuest(passwordAfterMs = 0) {
  let state: "login" | "password" | "shell" = "login";
  const guest = new FakeConsole((line, guest) => {
    if (state === "login" && line === "test") {
      state = "password";
      guest.print("test\r\n");
      if (passwordAfterMs === 0) return guest.print("Password: ");
      setTimeout(() => guest.print("Password: "), passwordAfterMs);
      return;
    }
    if (state === "password") {
      state = line === "s3cret" ? "shell" : "login";
      return guest.print(
        state === "shell"
          ? "\r\ntest@vm:~$ "
          : "\r\nLogin incorrect\r\nvm login: ",
      );
    }
    if (state === "shell") return shellGuest("test@vm:~$ ")(line, guest);
  });
  guest.print("\r\nvm login: ");
  return { guest, state: () => state };
}

const TEST_USER = { credentials: { user: "test", password: "s3cret" } };

Deno.test("ShellSession logs in with a password and never shows it", async () => {
  const { guest, state } = passwordGuest();
  const { channel, shell } = session(guest, TEST_USER);
  await shell.ready();
  assert.equal(state(), "shell");
  assert.ok(!channel.tail().includes("s3cret"));
  await channel.close();
});

Deno.test("ShellSession types no probe while login works on the user name", async () => {
  // The console is quiet between the echo and the prompt.
  const { guest, state } = passwordGuest(700);
  const { channel, shell } = session(guest, TEST_USER);
  await shell.ready();
  assert.equal(state(), "shell");
  await channel.close();
});

Deno.test("ShellSession reports a rejected login by user, not password", async () => {
  const guest = new FakeConsole((line, guest) => {
    if (line === "test") return guest.print("test\r\nPassword: ");
    guest.print("\r\nLogin incorrect\r\nvm login: ");
  });
  guest.print("vm login: ");
  const { channel, shell } = session(guest, {
    credentials: { user: "test", password: "wrong-pw" },
  });
  await assert.rejects(shell.ready(), (error: unknown) => {
    assert.ok(error instanceof ConsoleError);
    assert.match(error.message, /did not accept the login of "test"/);
    assert.ok(!error.message.includes("wrong-pw"));
    return true;
  });
  await channel.close();
});

Deno.test("ShellSession asks for a password it was not given", async () => {
  const guest = new FakeConsole((line, guest) => {
    if (line === "root") guest.print("root\r\nPassword: ");
  });
  guest.print("vm login: ");
  const { channel, shell } = session(guest);
  await assert.rejects(shell.ready(), /VMRUNNER_PASSWORD/);
  await channel.close();
});

Deno.test("ShellSession presses Enter at busybox's askfirst prompt", async () => {
  let activated = false;
  const guest = new FakeConsole((line, guest) => {
    if (!activated) {
      // askfirst discards whatever line activates it.
      activated = true;
      return guest.print(
        "\r\n\r\nBusyBox v1.35.0 built-in shell (ash)\r\n/ # ",
      );
    }
    return shellGuest("/ # ")(line, guest);
  });
  guest.print("\r\nPlease press Enter to activate this console. ");
  const { channel, shell } = session(guest);
  await shell.ready();
  assert.ok(activated);
  await channel.close();
});

Deno.test("ShellSession is not confused by cursor queries and split or invalid UTF-8 (busybox ash, tp-libvirt #4449)", async () => {
  const guest = new FakeConsole((line, guest) => {
    const reply = probeReply(line);
    if (reply) {
      // A reply split in the middle of a multi-byte character, then
      // busybox's prompt with its cursor position query.
      guest.printSplit(
        new Uint8Array([
          0xd9,
          0xff,
          ...new TextEncoder().encode(`é${reply}\r\nroot@vm:/# \x1b[6n`),
        ]),
        1,
      );
    }
    const sync = syncReply(line);
    if (sync) guest.print(sync);
  });
  const { channel, shell } = session(guest);
  await shell.ready();
  await channel.close();
});

Deno.test("ShellSession ends with the last console lines when no shell answers", async () => {
  const guest = new FakeConsole(() => {});
  guest.print(
    "[    3.5] Run /init as init process\r\nKernel panic - not syncing\r\n",
  );
  const { channel, shell } = session(guest, { readyTimeoutMs: 1500 });
  await assert.rejects(shell.ready(), (error: unknown) => {
    assert.ok(error instanceof ConsoleError);
    assert.match(error.message, /No shell answered/);
    assert.match(error.message, /\| Kernel panic - not syncing/);
    return true;
  });
  await channel.close();
});

Deno.test("ShellSession blames a console held by an earlier command, not the kernel command line", async () => {
  let stuck = false;
  const guest = new FakeConsole((line, guest) => {
    if (stuck) return; // a stopped program holds the terminal
    const nonce = runNonce(line);
    if (!nonce) return shellGuest()(line, guest);
    stuck = true;
    guest.print(`@@vmr:${nonce}:b@@\n`);
  });
  const { channel, shell } = session(guest, { readyTimeoutMs: 1500 });
  const output = () => {};
  await shell.ready();
  const signal = AbortSignal.timeout(50);
  assert.equal(
    await shell.run("sh -c 'kill -STOP $$'", { output, signal }),
    130,
  );
  await assert.rejects(shell.run("true", { output }), (error: unknown) => {
    assert.ok(error instanceof ConsoleError);
    assert.match(error.message, /no longer answers: a program an earlier/);
    assert.doesNotMatch(error.message, /console=ttyS0/);
    return true;
  });
  await channel.close();
});

Deno.test("ShellSession fails at once when the console closes", async () => {
  const guest = new FakeConsole(() => {});
  const { channel, shell } = session(guest);
  guest.hangUp();
  await assert.rejects(shell.ready(), /console closed/);
  await channel.close();
});

Deno.test("ShellSession runs again after a failed command on a reattached console (kubevirt #6181)", async () => {
  const guest = new FakeConsole(
    shellGuest(
      "root@vm:/# ",
      (line) => line.includes("'false'") ? ["", 1] : ["ok\n", 0],
    ),
  );
  const first = session(guest);
  const chunks: string[] = [];
  const output = (bytes: Uint8Array) => chunks.push(decoder.decode(bytes));
  assert.equal(await first.shell.run("'false'", { output }), 1);
  // A new session on the same console must not read $? to decide anything.
  const second = new ShellSession(first.channel);
  assert.equal(await second.run("'true'", { output }), 0);
  assert.equal(chunks.join(""), "ok\n");
  await first.channel.close();
});

Deno.test("ShellSession keeps the output of a command that prints other runs' markers (os-autoinst #25500)", async () => {
  const hostile = "@@vmr:000000000000:e:0@@\n@@vmr:EOS~~~\nroot@vm:/# \n";
  const guest = new FakeConsole(shellGuest("root@vm:/# ", () => [hostile, 3]));
  const { channel, shell } = session(guest);
  const chunks: Uint8Array[] = [];
  const status = await shell.run("'x'", { output: (b) => chunks.push(b) });
  assert.equal(status, 3);
  assert.equal(chunks.map((c) => decoder.decode(c)).join(""), hostile);
  await channel.close();
});

Deno.test("ShellSession sends a command and its end marker as one line (os-autoinst #2952)", async () => {
  const guest = new FakeConsole(shellGuest());
  const { channel, shell } = session(guest);
  for (const command of ["'ls' 'x'", "'echo' 'x'"]) {
    await shell.run(command, { output: () => {} });
  }
  // The function defined at set-up prints both markers around it.
  assert.match(guest.typed, /__vmr_run\(\) \{.*vmr:%s:b.*eval.*vmr:%s:e:%s/);
  const framed = framedLines(guest);
  assert.equal(framed.length, 2);
  // The command is a comment the function reads, or, for a builtin that
  // runs in place, its arguments.
  assert.match(framed[0], /^__vmr_run [0-9a-f]{12} +#'ls' 'x'$/);
  assert.match(framed[1], /^__vmr_run [0-9a-f]{12} h +'echo' 'x'$/);
  await channel.close();
});

Deno.test("ShellSession sends command lines in whole loads of the UART's FIFO", async () => {
  const guest = new FakeConsole(shellGuest());
  const { channel, shell } = session(guest);
  const output = () => {};
  for (const command of ["'true'", "'echo' 'é'", "x".repeat(37), "'a'\n'b'"]) {
    await shell.run(command, { output });
  }
  const framed = framedLines(guest);
  assert.equal(framed.length, 4);
  for (const line of framed) {
    // Each line was typed with its "\n".
    assert.equal(new TextEncoder().encode(`${line}\n`).length % 8, 0, line);
  }
  await channel.close();
});

Deno.test("ShellSession probes again when the shell swallows the first probe (vpsadminos)", async () => {
  let probes = 0;
  const guest = new FakeConsole((line, guest) => {
    if (probeReply(line) && ++probes === 1) return; // lost
    shellGuest()(line, guest);
  });
  guest.print("root@vm:/# ");
  const { channel, shell } = session(guest);
  await shell.ready();
  assert.ok(probes >= 2);
  await channel.close();
});

Deno.test("ShellSession reports a command that killed its loop, once the parent shell's prompt shows", async () => {
  const prompt = "root@vm:/# \x1b[6n";
  const guest = new FakeConsole((line, guest) => {
    const alive = line.match(/^echo VMR\\ALIVE([0-9a-f]+)$/);
    if (alive) return guest.print(`VMRALIVE${alive[1]}\r\n${prompt}`);
    const nonce = runNonce(line);
    // The loop dies mid-command; the shell that started it is back.
    if (nonce) return guest.print(`@@vmr:${nonce}:b@@\n\r\n${prompt}`);
    shellGuest()(line, guest);
  });
  const { channel, shell } = session(guest, { livenessCheckMs: 50 });
  await assert.rejects(
    shell.run("kill -9 $$", { output: () => {} }),
    (error: unknown) => {
      assert.ok(error instanceof ConsoleError);
      assert.match(error.message, /ended the shell vmrunner runs commands in/);
      return true;
    },
  );
  assert.equal(shell.isReady, false, "set up again before the next command");
  assert.equal(shell.wasReady, true, "a shell was reached: shut down gently");
  await channel.close();
});

Deno.test("ShellSession types nothing into a quiet command that waits on the terminal", async () => {
  const guest = new FakeConsole((line, guest) => {
    const nonce = runNonce(line);
    if (!nonce) return shellGuest()(line, guest);
    // A program asks on /dev/tty and waits: the console shows no shell.
    guest.print(`@@vmr:${nonce}:b@@\nPassphrase: `);
    setTimeout(() => guest.print(`ok\n@@vmr:${nonce}:e:0@@\n`), 500);
  });
  const { channel, shell } = session(guest, { livenessCheckMs: 50 });
  const output: Uint8Array[] = [];
  const status = await shell.run("ssh-keygen", {
    output: (bytes) => output.push(bytes),
  });
  assert.equal(status, 0);
  assert.equal(
    output.map((b) => decoder.decode(b)).join(""),
    "Passphrase: ok\n",
  );
  assert.doesNotMatch(guest.typed, /ALIVE/, "no probe typed as an answer");
  await channel.close();
});
