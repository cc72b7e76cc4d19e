/**
 * Runs `deno test` with the Windows build of Deno under Wine, granting
 * exactly the permissions vmrunner.exe ships with.
 *
 * ```sh
 * deno run --allow-run --allow-read --allow-env tests/wine/run.ts \
 *   [--timeout=SECONDS] [--cache=DIR] [FILE... | deno test flags]
 * ```
 *
 * Without files it runs `tests/windows/`. It prepares Wine first
 * (`setup.sh`, about a second once cached), runs from the repository root,
 * which Wine sees as `Z:\...`, passes deno's output through and exits with
 * deno's exit code. A run still going after the timeout (default 600 s, or
 * `WINE_TEST_TIMEOUT`) is killed and exits 124. Wine's server is stopped
 * afterwards either way, so nothing stays running.
 *
 * TypeScript rather than shell: it imports the permission list that
 * `deno compile` shares, and a child process with a deadline and signal
 * forwarding is plainer here than in sh.
 *
 * @module
 */

import { VMRUNNER_PERMISSIONS } from "./permissions.ts";

const DEFAULT_TIMEOUT_S = 600;
/** How long Wine's services get to exit on their own after the run. */
const WINE_EXIT_GRACE_MS = 20_000;

const repo = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

function say(message: string): void {
  console.error(`wine run: ${message}`);
}

/** Splits our own options from the arguments meant for `deno test`. */
function parseArgs(args: string[]) {
  let timeoutS = Number(Deno.env.get("WINE_TEST_TIMEOUT") ?? DEFAULT_TIMEOUT_S);
  let cache = `${repo}/.cache/wine`;
  const rest: string[] = [];
  for (const arg of args) {
    const [key, value] = arg.split(/=(.*)/s, 2);
    if (key === "--timeout" && value !== undefined) timeoutS = Number(value);
    else if (key === "--cache" && value !== undefined) {
      cache = value.startsWith("/") ? value : `${Deno.cwd()}/${value}`;
    } else rest.push(arg);
  }
  if (!(timeoutS > 0)) {
    say(`the timeout must be a positive number of seconds, not ${timeoutS}`);
    Deno.exit(2);
  }
  // deno runs in the repository; files named from elsewhere are made
  // absolute. Flags with values must use the --flag=value form.
  const here = Deno.cwd();
  const testArgs = rest.map((arg) =>
    arg.startsWith("-") || arg.startsWith("/") || here === repo
      ? arg
      : `${here}/${arg}`
  );
  const hasFiles = rest.some((arg) => !arg.startsWith("-"));
  return {
    timeoutS,
    cache,
    testArgs: hasFiles ? testArgs : [...testArgs, "tests/windows/"],
  };
}

/** A Linux path as the Windows side sees it: `/x/y` is `Z:\x\y`. */
function windowsPath(path: string): string {
  return path.startsWith("/") ? `Z:${path.replaceAll("/", "\\")}` : path;
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

async function main(): Promise<number> {
  const { timeoutS, cache, testArgs } = parseArgs(Deno.args);
  const denoWin = await setUpWine(cache);
  const wineserver = denoWin.replace(/deno-win$/, "wineserver");
  const args = ["test", ...VMRUNNER_PERMISSIONS, ...testArgs.map(windowsPath)];
  say(`deno ${args.join(" ")}`);

  const started = performance.now();
  const child = new Deno.Command(denoWin, {
    args,
    cwd: repo,
    env: {
      WINEDEBUG: "-all",
      // The Windows deno's own cache, apart from the Linux one.
      DENO_DIR: windowsPath(`${cache}/deno-dir`),
    },
    stdin: "null",
    stdout: "inherit",
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
        `the tests did not finish within ${timeoutS} s; killing Wine. ` +
          "Rerun with --timeout=SECONDS, or one file at a time to find " +
          "the one that hangs",
      ),
    timeoutS * 1000,
  );
  const onSignal = () => stop("interrupted; killing Wine");
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  const status = await child.status;
  clearTimeout(timer);
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);

  if (stopReason !== undefined) {
    await killWine(wineserver);
    await stopWine(wineserver);
    say(`stopped after ${seconds} s`);
    return stopReason.startsWith("interrupted") ? 130 : 124;
  }
  await stopWine(wineserver);
  say(`deno test under Wine exited with ${status.code} after ${seconds} s`);
  return status.code;
}

Deno.exit(await main());
