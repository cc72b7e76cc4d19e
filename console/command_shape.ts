/**
 * Which command lines the guest's command loop may run without `eval`.
 *
 * Most commands are a program and its arguments, written as words that the
 * shell takes literally (`ls /`, or `'cat' '/etc/os-release'` from an
 * argument list). Such a line can be handed to the loop's function as its
 * arguments and run as `"$@"`, which means the same as `eval` of the text
 * and lets the shell exec the program in place of the subshell instead of
 * forking again. A few builtins of such a line cannot change the shell at
 * all and may run in the loop's own shell, with no fork whatever.
 *
 * @module
 */

/** How the command loop runs a command line. */
export type CommandShape =
  /** Anything else: `eval` of the text in a subshell. */
  | "syntax"
  /** Literal words: `"$@"` in a subshell. */
  | "words"
  /** Literal words naming a builtin that changes nothing: `"$@"` in place. */
  | "builtin";

/**
 * Builtins that leave the shell as they found it whatever their arguments,
 * in dash, busybox ash and bash alike. `printf` is not one: bash's
 * `printf -v` sets a variable.
 */
const STATE_FREE_BUILTINS = new Set([
  ":",
  "true",
  "false",
  "echo",
  "pwd",
  "test",
  "[",
]);

/**
 * Words that are reserved when they stand unquoted where a command begins.
 * `"$@"` would run them as commands, where `eval` parses them as syntax.
 * (`!`, braces and `[[` cannot get this far: they are not literal.)
 */
const RESERVED_WORDS = new Set([
  "case",
  "coproc",
  "do",
  "done",
  "elif",
  "else",
  "esac",
  "fi",
  "for",
  "function",
  "if",
  "in",
  "select",
  "then",
  "time",
  "until",
  "while",
]);

/**
 * Characters that mean nothing to the shell outside quotes, wherever they
 * stand. Left out: expansions (`$`, `` ` ``, `~`), globs (`*`, `?`, `[`,
 * `]`), operators, `#`, `"`, braces and `!`.
 */
const LITERAL = /[A-Za-z0-9_@%+=:,./-]/;

/** The shape of `command` (see {@linkcode CommandShape}). */
export function commandShape(command: string): CommandShape {
  const words = literalWords(command);
  if (words === undefined || words.length === 0) return "syntax";
  const [first] = words;
  // Unquoted, a reserved word is syntax and `NAME=value` an assignment.
  if (RESERVED_WORDS.has(first.raw) || first.raw.includes("=")) {
    return "syntax";
  }
  return STATE_FREE_BUILTINS.has(first.value) ? "builtin" : "words";
}

interface Word {
  /** As written. */
  raw: string;
  /** What the shell makes of it. */
  value: string;
}

/**
 * The words of `command` if each is made only of literal characters,
 * single-quoted strings and backslash escapes; otherwise `undefined`.
 */
function literalWords(command: string): Word[] | undefined {
  const words: Word[] = [];
  let i = 0;
  while (i < command.length) {
    if (command[i] === " " || command[i] === "\t") {
      i++;
      continue;
    }
    const start = i;
    let value = "";
    while (i < command.length && command[i] !== " " && command[i] !== "\t") {
      const c = command[i];
      if (c === "'") {
        const close = command.indexOf("'", i + 1);
        if (close < 0) return undefined;
        value += command.slice(i + 1, close);
        i = close + 1;
      } else if (c === "\\") {
        // A backslash before a newline joins lines; there are none here,
        // but a trailing backslash would join the padding that follows.
        if (i + 1 >= command.length || command[i + 1] === "\n") {
          return undefined;
        }
        value += command[i + 1];
        i += 2;
      } else if (LITERAL.test(c)) {
        value += c;
        i++;
      } else {
        return undefined;
      }
    }
    words.push({ raw: command.slice(start, i), value });
  }
  return words;
}
