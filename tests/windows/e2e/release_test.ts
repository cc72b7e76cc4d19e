/**
 * vmrunner.exe: `deno task compile` and `deno task release` (tools/), and
 * the built .exe run under Wine from the unpacked release zip.
 *
 * Deno's Windows runtime (denort.exe) cannot be downloaded where these
 * tests run, so the test that builds and runs the .exe runs only when a
 * runtime is present (DENORT_BIN, or the cached zip); otherwise it is
 * reported as ignored, with the reason, and never counted as passed.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  compileArgs,
  EXIT_NO_RUNTIME,
  findRuntime,
  TARGET,
} from "../../../tools/compile.ts";
import {
  VMRUNNER_PERMISSIONS,
  VMRUNNER_V8_FLAGS,
} from "../../../tools/deno_flags.ts";
import { IMAGE_FILES, release } from "../../../tools/release.ts";
import {
  CTRL_EVENT,
  DENO_EXE,
  IMAGE_DIR,
  ROOT,
  text,
  vmGone,
  vmrunner,
} from "./helpers.ts";

const runtime = await findRuntime();
const NEEDS_DENORT = "[needs denort]";
if (!runtime.found) {
  console.error(
    `\n${NEEDS_DENORT} NOT RUN: the test that builds vmrunner.exe and runs ` +
      `it under Wine: ${runtime.reason}. It runs when DENORT_BIN names an ` +
      `unpacked denort.exe of Deno ${Deno.version.deno} (${TARGET}), or ` +
      "the runtime's zip is in Deno's cache (see `deno task compile`).\n",
  );
}

/** Runs a command, returning its status and output. */
async function run(
  command: string,
  args: string[],
  env: Record<string, string> = {},
  options: { clearEnv?: boolean; cwd?: string } = {},
) {
  const { code, stdout, stderr } = await new Deno.Command(command, {
    args,
    env,
    clearEnv: options.clearEnv,
    cwd: options.cwd ?? ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code, stdout: text(stdout), stderr: text(stderr) };
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    await Deno.readFile(path),
  );
  return Array.from(new Uint8Array(digest), (b) => b.toString(16)).join(":");
}

/** Unpacks `zip` into `dir` with Info-ZIP, checking every entry's CRC. */
async function unzip(zip: string, dir: string): Promise<string[]> {
  const tested = await run("unzip", ["-t", zip]);
  assert.equal(tested.code, 0, tested.stdout + tested.stderr);
  const listed = await run("unzip", ["-Z1", zip]);
  assert.equal(listed.code, 0, listed.stderr);
  const extracted = await run("unzip", ["-q", zip, "-d", dir]);
  assert.equal(extracted.code, 0, extracted.stderr);
  return listed.stdout.trim().split("\n");
}

Deno.test("deno task compile without a Windows runtime says where to put one, and builds nothing", async () => {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  assert.match(
    config.tasks.compile.command,
    /^deno run .* tools\/compile\.ts$/,
  );
  const denoDir = await Deno.makeTempDir({ prefix: "vmrunner-denodir-" });
  const output = join(denoDir, "vmrunner.exe");
  try {
    // No DENORT_BIN, and a Deno cache without the runtime's zip (the tool
    // imports nothing from npm, so --no-config keeps deno off the network).
    const env = Deno.env.toObject();
    delete env.DENORT_BIN;
    const result = await run(
      Deno.execPath(),
      [
        "run",
        "--no-config",
        ...config.tasks.compile.command.split(" ").slice(2, -1),
        "tools/compile.ts",
        `--output=${output}`,
      ],
      { ...env, DENO_DIR: denoDir, NO_COLOR: "1" },
      { clearEnv: true },
    );
    assert.equal(result.code, EXIT_NO_RUNTIME, result.stderr);
    const cached = join(denoDir, "dl", "release", `v${Deno.version.deno}`);
    assert.ok(result.stderr.includes(`${cached}/`), result.stderr);
    assert.match(result.stderr, /set DENORT_BIN to an unpacked denort\.exe/);
    assert.match(result.stderr, /dl\.deno\.land.*;\n.*unless asked with/);
    assert.doesNotMatch(result.stderr, /Download/, "no download was tried");
    await assert.rejects(Deno.stat(output), Deno.errors.NotFound);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});

Deno.test("deno compile builds the task's Windows executable from main.ts and its modules (the full deno.exe stands in for denort; its output is checked, not run)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vmrunner-compile-" });
  try {
    const output = join(dir, "vmrunner.exe");
    const result = await run(Deno.execPath(), compileArgs(output), {
      DENORT_BIN: DENO_EXE,
      NO_COLOR: "1",
    });
    assert.equal(result.code, 0, result.stderr);
    const exe = await Deno.readFile(output);
    assert.equal(text(exe.subarray(0, 2)), "MZ", "a Windows executable");
    // The program went in: the runtime plus main.ts and its modules.
    assert.ok(exe.length > (await Deno.stat(DENO_EXE)).size);
    assert.match(result.stdout + result.stderr, /win32\//);
    // Deno's listing shortens a folder of many files to `console/*`, so
    // the .exe itself is read for the Windows modules (deno.exe alone has
    // neither string).
    const contents = new TextDecoder("latin1").decode(exe);
    assert.ok(contents.includes("win32/kernel32_ffi.ts"), "win32/ went in");
    assert.ok(
      contents.includes("connectNamedPipe"),
      "console/named_pipe.ts went in",
    );
    // What the .exe runs with is in its metadata, a JSON document.
    const v8Flags = contents.match(/"v8_flags":(\[[^\]]*\])/)?.[1];
    assert.ok(v8Flags, "the metadata lists V8 flags");
    for (const flag of VMRUNNER_V8_FLAGS) {
      const v8Flag = flag.slice("--v8-flags=".length);
      assert.ok(JSON.parse(v8Flags).includes(v8Flag), v8Flags);
    }
    const granted = contents.match(/"permissions":(\{[^{}]*\})/)?.[1];
    assert.ok(granted, "the metadata lists permissions");
    const permissions = JSON.parse(granted);
    // `--allow-x` is `allow_x: []`, `--allow-x=a,b` is `["a", "b"]`.
    for (const flag of VMRUNNER_PERMISSIONS) {
      const allow = flag.match(/^--allow-(\w+)(?:=(.*))?$/);
      if (!allow) continue;
      const [, kind, list] = allow;
      const expected = list === undefined ? [] : list.split(",");
      assert.deepEqual(permissions[`allow_${kind}`], expected, granted);
    }
    assert.equal(permissions.allow_net, null, granted);
    assert.equal(permissions.allow_run, null, granted);
    assert.equal(permissions.prompt, false, granted);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task release packs vmrunner.exe and vm-image/ as users unpack them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vmrunner-release-" });
  try {
    const zip = join(dir, "vmrunner.zip");
    // Any Windows executable stands in for vmrunner.exe here.
    const messages: string[] = [];
    const status = await release({
      exe: CTRL_EVENT,
      output: zip,
      log: (message) => messages.push(message),
    });
    assert.equal(status, 0, messages.join("\n"));
    assert.match(messages.join("\n"), /sha256 [0-9a-f]{64}/);
    const unpacked = join(dir, "unpacked");
    const names = await unzip(zip, unpacked);
    assert.deepEqual(names, [
      "vmrunner.exe",
      ...IMAGE_FILES.map((file) => `vm-image/${file}`),
    ]);
    assert.equal(
      await sha256(join(unpacked, "vmrunner.exe")),
      await sha256(CTRL_EVENT),
    );
    for (const file of IMAGE_FILES) {
      assert.equal(
        await sha256(join(unpacked, "vm-image", file)),
        await sha256(join(IMAGE_DIR, file)),
        file,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: `${NEEDS_DENORT} the built vmrunner.exe runs under Wine from the ` +
    "unpacked release, finding vm-image beside itself",
  ignore: !runtime.found,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "vmrunner-exe-" });
    try {
      const zip = join(dir, "vmrunner.zip");
      assert.equal(await release({ output: zip }), 0, "the release built");
      // A folder with a space, as "Program Files" has.
      const home = join(dir, "vmrunner home");
      await unzip(zip, home);
      const elsewhere = join(dir, "cwd");
      await Deno.mkdir(elsewhere);
      const id = `win-exe-${Deno.pid}`;
      const result = await vmrunner(
        ["--read-only", "-id", id, "sh", "-c", "uname -s; exit 3"],
        { exe: { path: join(home, "vmrunner.exe") }, cwd: elsewhere },
      );
      assert.equal(result.code, 3, result.stderr);
      assert.equal(text(result.stdout), "Linux\n");
      assert.deepEqual(result.trace.leaks, [], "nothing left open");
      assert.deepEqual(await vmGone(id), [], "no VM left running");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
