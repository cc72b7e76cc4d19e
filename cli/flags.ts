/**
 * A small command-line parser: a table of flags, each typed by what its
 * value becomes, read GNU style (`--memory 4096`, `--memory=4096`) and Go
 * style (`-memory 4096`), and help text made from the same table.
 *
 * vmrunner has its own rather than commander: commander is CommonJS built
 * on `node:events`, `node:child_process` and `node:fs`, and loading it
 * starts Deno's Node compatibility layer, some 35 ms and 16 MB at every
 * start of a tool whose budget is 80 ms and 60 MB (see BENCHMARKS.md).
 *
 * @module
 */

/** One flag: a switch (`T` is `true`) or a flag with a value. */
export interface Flag<T> {
  /** The long name without dashes: `memory` is `--memory` and `-memory`. */
  readonly name: string;
  /** A one-letter spelling: `i` is `-i`. */
  readonly short?: string;
  /** What help calls the value (`MB`); a switch has none. */
  readonly valueName?: string;
  /** What the flag does, for help; help leaves out a flag without one. */
  readonly description?: string;
  /**
   * Turns the text given for the flag into its value. Throws an `Error`
   * whose message completes "--memory ...", such as "must be a whole
   * number".
   */
  readonly parse: (text: string) => T;
}

/** Flags by the key their value is returned under. */
export type FlagTable = Record<string, Flag<unknown>>;

/** The values of the flags that were given, by key. */
export type FlagValues<F extends FlagTable> = {
  -readonly [K in keyof F]?: F[K] extends Flag<infer T> ? T : never;
};

/** A switch: present or absent. */
export function switchFlag(
  name: string,
  description?: string,
  short?: string,
): Flag<true> {
  return { name, short, description, parse: () => true };
}

/** A flag followed by a value, which `parse` checks and converts. */
export function valueFlag<T>(
  name: string,
  valueName: string,
  description: string | undefined,
  parse: (text: string) => T,
): Flag<T> {
  return { name, valueName, description, parse };
}

/** A command line the table does not accept; the message says why. */
export class FlagError extends Error {
  /** Always `"FlagError"`. */
  override name = "FlagError";
  /** The flag as spelled, when no flag of the table has that name. */
  readonly unknownFlag?: string;

  /** `message` says what is wrong; `unknownFlag` names a flag not known. */
  constructor(message: string, unknownFlag?: string) {
    super(message);
    this.unknownFlag = unknownFlag;
  }
}

/** How {@linkcode parseFlags} reads the arguments. */
export interface ParseOptions {
  /**
   * Whether flags may follow operands (`kill a --all b`). Without, the
   * first operand ends the flags: the rest is a guest command whose own
   * flags are not ours.
   */
  interleaved?: boolean;
}

/** What {@linkcode parseFlags} found. */
export interface ParsedFlags<F extends FlagTable> {
  /** The flags given; a flag given twice has its last value. */
  flags: FlagValues<F>;
  /** The arguments that are not flags, in order, without `--`. */
  operands: string[];
}

/**
 * Reads `args` against `table`. `--` ends the flags; so does the first
 * operand unless `interleaved`. `-` alone is an operand.
 *
 * @throws {FlagError} for an unknown flag, a missing value or one that
 * `parse` refused, naming the flag as it was spelled.
 */
export function parseFlags<F extends FlagTable>(
  args: readonly string[],
  table: F,
  options: ParseOptions = {},
): ParsedFlags<F> {
  const flags: Record<string, unknown> = {};
  const operands: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      if (!options.interleaved) {
        operands.push(...args.slice(i));
        break;
      }
      operands.push(arg);
      continue;
    }
    const equals = arg.indexOf("=");
    const spelling = equals < 0 ? arg : arg.slice(0, equals);
    const found = findFlag(table, spelling);
    if (!found) {
      const guess = suggest(table, spelling);
      throw new FlagError(
        `unknown option '${spelling}'` +
          (guess ? ` (did you mean --${guess}?)` : ""),
        spelling,
      );
    }
    const [key, flag] = found;
    if (flag.valueName === undefined) {
      if (equals >= 0) {
        throw new FlagError(`option '${spelling}' takes no value`);
      }
      flags[key] = flag.parse("");
      continue;
    }
    let text: string;
    if (equals >= 0) {
      text = arg.slice(equals + 1);
    } else if (i + 1 < args.length) {
      text = args[++i];
    } else {
      throw new FlagError(
        `option '${spelling} <${flag.valueName}>' needs a value`,
      );
    }
    try {
      flags[key] = flag.parse(text);
    } catch (error) {
      throw new FlagError(
        `${spelling} ${(error as Error).message} (got "${text}")`,
      );
    }
  }
  return { flags: flags as FlagValues<F>, operands };
}

/** `--name`, `-name` (Go style) or `-x` for a one-letter spelling. */
function findFlag(
  table: FlagTable,
  spelling: string,
): [string, Flag<unknown>] | undefined {
  const long = spelling.startsWith("--");
  const name = spelling.slice(long ? 2 : 1);
  for (const [key, flag] of Object.entries(table)) {
    if (flag.name === name) return [key, flag];
    if (!long && flag.short === name) return [key, flag];
  }
  return undefined;
}

/** The flag a typo most likely meant: at most two edits away. */
function suggest(table: FlagTable, spelling: string): string | undefined {
  const name = spelling.replace(/^--?/, "");
  let best: string | undefined;
  let bestDistance = 3;
  for (const flag of Object.values(table)) {
    const distance = editDistance(name, flag.name);
    if (distance < bestDistance && distance < flag.name.length / 2) {
      best = flag.name;
      bestDistance = distance;
    }
  }
  return best;
}

/** Levenshtein distance, with a swap of neighbours counting as one. */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[i].push(j);
        continue;
      }
      const same = a[i - 1] === b[j - 1];
      let best = Math.min(
        rows[i - 1][j] + 1,
        rows[i][j - 1] + 1,
        rows[i - 1][j - 1] + (same ? 0 : 1),
      );
      if (
        i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]
      ) {
        best = Math.min(best, rows[i - 2][j - 2] + 1);
      }
      rows[i].push(best);
    }
  }
  return rows[a.length][b.length];
}

/** What {@linkcode formatHelp} puts together. */
export interface HelpText {
  /** The usage lines, without "Usage: ". */
  usage: string[];
  /** A paragraph on what the command does. */
  description: string;
  /** Operands and what they are. */
  operands?: [string, string][];
  /** The flags; those without a description are left out. */
  flags: FlagTable;
  /** Text after the flags, as it is. */
  epilogue?: string;
}

/** The width help text is wrapped to. */
const HELP_COLUMNS = 80;

/** Help text in the usual shape: usage, description, operands, flags. */
export function formatHelp(help: HelpText): string {
  const rows = Object.values(help.flags)
    .filter((flag) => flag.description !== undefined)
    .map((flag): [string, string] => [
      (flag.short ? `-${flag.short}, ` : "") + `--${flag.name}` +
      (flag.valueName ? ` <${flag.valueName}>` : ""),
      flag.description!,
    ]);
  const operands = help.operands ?? [];
  const width = Math.max(
    ...[...rows, ...operands].map(([left]) => left.length),
  );
  const table = (entries: [string, string][]) =>
    entries.map(([left, text]) =>
      wrap(text, width + 4).replace(/^ +/, `  ${left.padEnd(width + 2)}`)
    ).join("\n");
  const sections = [
    help.usage.map((line, i) => (i === 0 ? "Usage: " : "       ") + line)
      .join("\n"),
    wrap(help.description, 0),
  ];
  if (operands.length > 0) sections.push(`Arguments:\n${table(operands)}`);
  sections.push(`Options:\n${table(rows)}`);
  if (help.epilogue) sections.push(help.epilogue.replace(/^\n+|\n+$/g, ""));
  return sections.join("\n\n") + "\n";
}

/** Wraps `text` to the help width, every line indented by `indent`. */
function wrap(text: string, indent: number): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && indent + line.length + 1 + word.length > HELP_COLUMNS) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  lines.push(line);
  return lines.map((each) => " ".repeat(indent) + each).join("\n");
}
