/**
 * Runs the Windows tests: first `deno test` with the Windows build of Deno
 * under Wine, granting exactly the permissions vmrunner.exe ships with;
 * then the end-to-end tests in `tests/windows/e2e/`, which run on Linux
 * and start vmrunner under Wine as a Windows user would, with the same
 * permissions.
 *
 * ```sh
 * deno run -A tests/wine/run.ts [--timeout=SECONDS] [--cache=DIR] \
 *   [FILE... | deno test flags]
 * ```
 *
 * Without files it runs all of `tests/windows/`. It prepares Wine first
 * (`setup.sh`, about a second once cached), runs from the repository root,
 * which Wine sees as `Z:\...`, passes deno's output through, and ends with
 * one summary line for both parts in deno's own format (`ok | 30 passed |
 * 0 failed | 1 ignored`), which `tests/run.ts` counts. It exits 0 only if
 * both parts passed. A part still going after the timeout (default 600 s,
 * or `WINE_TEST_TIMEOUT`) is killed and counts as failed. Wine's server is
 * stopped afterwards either way, so nothing stays running.
 *
 * How Windows finds `vmcompute.dll`: vmrunner loads it by name, as on
 * Windows, where it is in System32. Here the simulator's build folder is
 * put on the DLL search path through `WINEPATH` (Wine's way of adding to
 * the Windows PATH), rather than copying the DLL into the prefix's
 * System32 or beside deno.exe: nothing shared is changed, and a rebuilt
 * DLL is used at once, never a stale copy. The tests check that the module
 * loaded by name is this build's file.
 *
 * TypeScript rather than shell: it imports the permission list that
 * `deno compile` shares, and child processes with a deadline and signal
 * forwarding are plainer here than in sh.
 *
 * @module
 */

import { REPO as repo, SIM_BUILD_DIR, windowsPath } from "./paths.ts";
import { VMRUNNER_PERMISSIONS } from "../../tools/deno_flags.ts";

const DEFAULT_TIMEOUT_S = 600;
/** How long Wine's services get to exit on their own after the run. */
const WINE_EXIT_GRACE_MS = 20_000;
/** Tests run inside Wine. */
const IN_WINE_DIR = "tests/windows/";
/** Tests run on Linux that start vmrunner under Wine. */
const E2E_DIR = "tests/windows/e2e/";

function say(message: string): void {
  console.error(`wine run: ${message}`);
}

/** Splits our own options from the arguments meant for `deno test`. */
function parseArgs(args: string[]) {
  let timeoutS = Number(Deno.env.get("WINE_TEST_TIMEOUT") ?? DEFAULT_TIMEOUT_S);
  let cache = `${repo}/.cache/wine`;
  const flags: string[] = [];
  const files: string[] = [];
  for (const arg of args) {
    const [key, value] = arg.split(/=(.*)/s, 2);
    if (key === "--timeout" && value !== undefined) timeoutS = Number(value);
    else if (key === "--cache" && value !== undefined) {
      cache = value.startsWith("/") ? value : `${Deno.cwd()}/${value}`;
    } else if (arg.startsWith("-")) flags.push(arg);
    else files.push(arg);
  }
  if (!(timeoutS > 0)) {
    say(`the timeout must be a positive number of seconds, not ${timeoutS}`);
    Deno.exit(2);
  }
  // Both parts run in the repository: files are made relative to it.
  // Flags with values must use the --flag=value form.
  const relative = files.map((file) => {
    const absolute = file.startsWith("/") ? file : `${Deno.cwd()}/${file}`;
    return absolute.startsWith(`${repo}/`)
      ? absolute.slice(repo.length + 1)
      : absolute;
  });
  const isE2e = (file: string) =>
    `${file.replace(/\/?$/, "/")}`.startsWith(E2E_DIR);
  let inWine = relative.filter((file) => !isE2e(file));
  let e2e = relative.filter(isE2e);
  // The whole folder, or nothing named: both parts, each its own files.
  const whole = relative.length === 0 ||
    relative.some((file) => `${file.replace(/\/?$/, "/")}` === IN_WINE_DIR);
  if (whole) {
    inWine = [IN_WINE_DIR];
    e2e = [E2E_DIR];
  }
  return { timeoutS, cache, flags, inWine, e2e, whole };
}

async function setUpWine(cache: string): Promise<string> {
  const setup = await new Deno.Command("bash", {
    args: [`${repo}/tests/wine/setup.sh`, cache],
    env: { DENO_VERSION: Deno.version.deno },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!setup.success) {
    say(`setting up Wine failed (exit ${setup.code}); see the messages above`);
    Deno.exit(setup.code || 1);
  }
  return new TextDecoder().decode(setup.stdout).trim().split("\n").at(-1)!;
}

/** Waits for Wine's server (and its services) to exit, then kills what is left. */
async function stopWine(wineserver: string): Promise<void> {
  const waiting = new Deno.Command(wineserver, {
    args: ["-w"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = await Promise.race([
    waiting.status.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), WINE_EXIT_GRACE_MS);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    say("Wine's server did not exit on its own; killing it");
    waiting.kill("SIGKILL");
    await waiting.status;
    await killWine(wineserver);
  }
}

async function killWine(wineserver: string): Promise<void> {
  await new Deno.Command(wineserver, {
    args: ["-k"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
}

/** What one `deno test` run reported. */
interface Tally {
  passed: number;
  failed: number;
  ignored: number;
  ok: boolean;
}

// deno test's summary: "ok | 5 passed | 0 failed | 1 ignored (2s)".
const SUMMARY =
  /(ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed(?: \(\d+ steps?\))?(?: \| (\d+) ignored)?/g;

/** Runs one part with a deadline, passing its output through. */
async function runPart(
  name: string,
  command: string,
  args: string[],
  env: Record<string, string>,
  timeoutS: number,
  onStop: () => Promise<void>,
): Promise<Tally> {
  say(`${name}: ${command.split("/").at(-1)} ${args.join(" ")}`);
  const started = performance.now();
  const child = new Deno.Command(command, {
    args,
    cwd: repo,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();

  let stopReason: string | undefined;
  const stop = (reason: string) => {
    if (stopReason !== undefined) return;
    stopReason = reason;
    say(reason);
    child.kill("SIGKILL");
  };
  const timer = setTimeout(
    () =>
      stop(
        `${name}: the tests did not finish within ${timeoutS} s; killing ` +
          "them. Rerun with --timeout=SECONDS, or one file at a time to " +
          "find the one that hangs",
      ),
    timeoutS * 1000,
  );
  const onSignal = () => stop("interrupted; killing the tests");
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    text = (text + decoder.decode(chunk, { stream: true })).slice(-4096);
  }
  const status = await child.status;
  clearTimeout(timer);
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (stopReason !== undefined) {
    await onStop();
    say(`${name}: stopped after ${seconds} s`);
    if (stopReason.startsWith("interrupted")) Deno.exit(130);
  } else {
    say(`${name}: deno test exited with ${status.code} after ${seconds} s`);
  }
  const last = [...text.matchAll(SUMMARY)].at(-1);
  if (!last || stopReason !== undefined) {
    say(`${name}: no test summary; counted as one failure`);
    return { passed: 0, failed: 1, ignored: 0, ok: false };
  }
  return {
    passed: Number(last[2]),
    failed: Number(last[3]),
    ignored: Number(last[4] ?? 0),
    ok: status.success && last[1] === "ok",
  };
}

async function main(): Promise<number> {
  const { timeoutS, cache, flags, inWine, e2e, whole } = parseArgs(Deno.args);
  const denoWin = await setUpWine(cache);
  const wineserver = denoWin.replace(/deno-win$/, "wineserver");
  const started = performance.now();
  const tallies: Tally[] = [];

  if (inWine.length > 0) {
    tallies.push(
      await runPart(
        "in Wine",
        denoWin,
        [
          "test",
          ...VMRUNNER_PERMISSIONS,
          ...(whole ? [`--ignore=${E2E_DIR}`] : []),
          ...flags,
          ...inWine.map(windowsPath),
        ],
        {
          WINEDEBUG: "-all",
          // The Windows deno's own cache, apart from the Linux one.
          DENO_DIR: windowsPath(`${cache}/deno-dir`),
          // vmcompute.dll by name, from the simulator's build.
          WINEPATH: windowsPath(SIM_BUILD_DIR),
        },
        timeoutS,
        () => killWine(wineserver),
      ),
    );
  }
  if (e2e.length > 0) {
    tallies.push(
      await runPart(
        "end to end",
        Deno.execPath(),
        [
          "test",
          "--allow-run",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          ...flags,
          ...e2e,
        ],
        { VMRUNNER_WINE_CACHE: cache },
        timeoutS,
        () => killWine(wineserver),
      ),
    );
  }
  await stopWine(wineserver);

  const total = tallies.reduce((sum, t) => ({
    passed: sum.passed + t.passed,
    failed: sum.failed + t.failed,
    ignored: sum.ignored + t.ignored,
    ok: sum.ok && t.ok,
  }), { passed: 0, failed: 0, ignored: 0, ok: true });
  const seconds = Math.round((performance.now() - started) / 1000);
  console.log(
    `\nWindows tests, both parts: ${total.ok ? "ok" : "FAILED"} | ` +
      `${total.passed} passed | ${total.failed} failed | ` +
      `${total.ignored} ignored (${seconds}s)`,
  );
  return total.ok ? 0 : 1;
}

Deno.exit(await main());
