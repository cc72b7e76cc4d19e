/**
 * `deno task bench`: what vmrunner costs against a raw baseline measured in
 * the same run, on the same image, through the same simulator. Prints the
 * table and writes it into BENCHMARKS.md, between its markers.
 *
 * ```sh
 * deno task bench [--pairs N] [--blocks N] [--round-trips N]
 *   [--payload BYTES] [--output FILE | --no-write] [--json FILE]
 * ```
 *
 * @module
 */

import { ROOT } from "./boot_runs.ts";
import { replaceSection } from "./report.ts";
import { runBench } from "./run.ts";

const USAGE = "Usage: deno task bench [--pairs N] [--blocks N] " +
  "[--round-trips N] [--payload BYTES] [--output FILE | --no-write] " +
  "[--json FILE]";

/** The defaults keep a run at 5 minutes on the 2-core test machine when
 * it is quiet, and under 10 when other VMs load it. */
const DEFAULTS = {
  bootPairs: 10,
  blocks: 4,
  roundTrips: 20,
  payloadBytes: 2 * 1024 * 1024,
};

const HELP = `${USAGE}

Measures what vmrunner adds to a raw client, in one run on the test bed,
and writes the table into BENCHMARKS.md between its markers.

  --pairs N          vmrunner and raw-client boots, alternating (rows 1, 4,
                     5; default ${DEFAULTS.bootPairs})
  --blocks N         library and raw blocks on one VM (rows 2, 3; default ${DEFAULTS.blocks})
  --round-trips N    round trips in each block (default ${DEFAULTS.roundTrips})
  --payload BYTES    bytes of each throughput transfer (default ${DEFAULTS.payloadBytes})
  --output FILE      write the table into FILE instead of BENCHMARKS.md
  --no-write         only print the table
  --json FILE        also write every measurement to FILE`;

function parse(args: string[]) {
  const options = {
    ...DEFAULTS,
    output: `${ROOT}BENCHMARKS.md` as string | undefined,
    json: undefined as string | undefined,
  };
  const counts: Record<string, keyof typeof DEFAULTS> = {
    "--pairs": "bootPairs",
    "--blocks": "blocks",
    "--round-trips": "roundTrips",
    "--payload": "payloadBytes",
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    if (flag === "--no-write") {
      options.output = undefined;
    } else if (flag === "--output" || flag === "--json") {
      const value = args[++i];
      if (!value) throw new Error(`${flag} needs a file`);
      options[flag === "--output" ? "output" : "json"] = value;
    } else if (flag in counts) {
      const value = Number(args[++i]);
      if (!Number.isInteger(value) || value < 1) {
        throw new Error(`${flag} needs a positive whole number`);
      }
      options[counts[flag]] = value;
    } else {
      throw new Error(`Unknown argument ${flag}`);
    }
  }
  return options;
}

if (import.meta.main) {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(HELP);
    Deno.exit(0);
  }
  let options;
  try {
    options = parse(Deno.args);
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    Deno.exit(2);
  }
  const log = (message: string) => console.error(`bench: ${message}`);
  const result = await runBench({ ...options, log });
  console.log(`\n${result.section}\n`);
  if (options.json) {
    await Deno.writeTextFile(options.json, JSON.stringify(result, null, 2));
  }
  if (options.output) {
    const previous = await Deno.readTextFile(options.output).catch(() => "");
    await Deno.writeTextFile(
      options.output,
      replaceSection(previous, result.section),
    );
    // Leave the file as `deno fmt` wants it, whatever the notes around.
    await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "--quiet", options.output],
    }).output();
    log(`wrote ${options.output}`);
  }
}
