/**
 * Which command lines the guest's command loop may run in its own shell.
 *
 * Each command runs in a subshell, so that `exit`, `cd` or variables stay
 * inside it; under emulation that fork is most of what vmrunner adds to a
 * small command's round trip. A few builtins neither change the shell nor
 * look at it, whatever their arguments, and when the line is nothing but
 * one of them and literal words, running it in place is the same to the
 * user and costs no fork.
 *
 * @module
 */

/**
 * Builtins that leave the shell as they found it and see nothing of it
 * but what a subshell would see, in dash, busybox ash and bash alike. Not
 * `test`: `-t` and `/proc/self/fd` show the loop's file descriptors. Not
 * `printf`: bash's `-v` sets a variable.
 */
const IN_PLACE_BUILTINS = new Set([":", "true", "false", "echo", "pwd"]);

/**
 * Characters that mean nothing to the shell outside quotes, wherever they
 * stand. Left out: expansions (`$`, `` ` ``, `~`), globs (`*`, `?`, `[`),
 * operators, `#`, `"`, braces and `!`.
 */
const LITERAL = /[A-Za-z0-9_@%+=:,./-]/;

/**
 * Whether `command` is one of {@linkcode IN_PLACE_BUILTINS} followed by
 * literal words (plain characters, single-quoted strings, backslash
 * escapes), which the loop may run without a subshell.
 */
export function runsInPlace(command: string): boolean {
  const first = firstWord(command);
  return first !== undefined && IN_PLACE_BUILTINS.has(first);
}

/**
 * What the shell makes of the first word of `command`, if every word is
 * literal and there is one.
 */
function firstWord(command: string): string | undefined {
  let first: string | undefined;
  let i = 0;
  while (i < command.length) {
    if (command[i] === " " || command[i] === "\t") {
      i++;
      continue;
    }
    let word = "";
    while (i < command.length && command[i] !== " " && command[i] !== "\t") {
      const c = command[i];
      if (c === "'") {
        const close = command.indexOf("'", i + 1);
        if (close < 0) return undefined;
        word += command.slice(i + 1, close);
        i = close + 1;
      } else if (
        c === "\\" && i + 1 < command.length && command[i + 1] !== "\n"
      ) {
        // Escapes the next character. A last backslash would escape the
        // newline that ends the line, and one before a newline joins two.
        word += command[i + 1];
        i += 2;
      } else if (LITERAL.test(c)) {
        word += c;
        i++;
      } else {
        return undefined;
      }
    }
    first ??= word;
  }
  return first;
}
