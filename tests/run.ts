/**
 * Runs the test suites and prints one closing line for all of them:
 * `N passed, N failed` (and `, N skipped` when some were ignored).
 *
 * Usage: deno run -A tests/run.ts [suite...]   (default: every suite)
 *
 * Each suite is its own `deno test` process with the permissions and
 * environment it needs; see SUITES.
 *
 * @module
 */

import { TEST_BED_PERMISSIONS } from "../tools/deno_flags.ts";

const root = new URL("..", import.meta.url).pathname;
const simBuild = `${root}tests/hcs-sim/build`;

interface Suite {
  /** What the suite proves. */
  about: string;
  /** The command, as argv. */
  command: string[];
  /** Extra environment. */
  env?: Record<string, string>;
}

const SUITES: Record<string, Suite> = {
  unit: {
    about: "pure logic: framing, quoting, documents, errors, options",
    command: [
      "deno",
      "test",
      ...TEST_BED_PERMISSIONS,
      "--allow-run",
      "tests/unit/",
    ],
  },
  sim: {
    about: "the vmcompute.dll simulator, through Deno FFI",
    command: [
      "deno",
      "test",
      ...TEST_BED_PERMISSIONS,
      "--allow-run",
      "tests/hcs-sim/",
    ],
    env: { LD_LIBRARY_PATH: simBuild },
  },
  e2e: {
    about: "vmrunner end to end through the simulator and the real image",
    command: [
      "deno",
      "test",
      ...TEST_BED_PERMISSIONS,
      "--allow-run",
      "tests/e2e/",
    ],
    env: { LD_LIBRARY_PATH: simBuild },
  },
  windows: {
    about: "the Windows code paths, under Wine with the Windows Deno",
    command: ["deno", "run", "-A", "tests/wine/run.ts", "tests/windows/"],
  },
};

interface Tally {
  passed: number;
  failed: number;
  skipped: number;
  ok: boolean;
}

// deno test's summary: "ok | 5 passed | 0 failed | 1 ignored (2s)".
const SUMMARY =
  /(ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?(?: \| (\d+) ignored)?/;

async function runSuite(name: string, suite: Suite): Promise<Tally> {
  console.log(`\n=== ${name}: ${suite.about}`);
  const child = new Deno.Command(suite.command[0], {
    args: suite.command.slice(1),
    cwd: root,
    env: { ...suite.env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let last: RegExpMatchArray | null = null;
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    text = (text + decoder.decode(chunk, { stream: true })).slice(-4096);
    const matches = [...text.matchAll(new RegExp(SUMMARY, "g"))];
    if (matches.length > 0) last = matches[matches.length - 1];
  }
  const { code } = await child.status;
  if (!last) {
    console.log(
      `=== ${name}: no test summary (exit ${code}); counted as failed`,
    );
    return { passed: 0, failed: 1, skipped: 0, ok: false };
  }
  return {
    passed: Number(last[2]),
    failed: Number(last[4]),
    skipped: Number(last[6] ?? 0),
    ok: code === 0 && last[1] === "ok",
  };
}

const names = Deno.args.length > 0 ? Deno.args : Object.keys(SUITES);
const total: Tally = { passed: 0, failed: 0, skipped: 0, ok: true };
for (const name of names) {
  const suite = SUITES[name];
  if (!suite) {
    console.error(
      `Unknown suite "${name}"; choose from ${Object.keys(SUITES).join(", ")}`,
    );
    Deno.exit(2);
  }
  const tally = await runSuite(name, suite);
  total.passed += tally.passed;
  total.failed += tally.failed;
  total.skipped += tally.skipped;
  total.ok &&= tally.ok;
}
console.log(
  `\n${total.passed} passed, ${total.failed} failed` +
    (total.skipped > 0 ? `, ${total.skipped} skipped` : ""),
);
Deno.exit(total.ok && total.failed === 0 ? 0 : 1);
