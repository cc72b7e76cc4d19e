/**
 * Quoting for the guest's POSIX shell.
 *
 * @module
 */

/**
 * Quotes one argument so that the shell passes it on unchanged: inside
 * single quotes nothing is special but the single quote itself.
 */
export function shellQuote(argument: string): string {
  return `'${argument.replaceAll("'", `'\\''`)}'`;
}

/** A command line that runs `argv` with every argument as given. */
export function shellCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}
