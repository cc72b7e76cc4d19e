/**
 * vmrunner's messages to the user: on stderr, quiet unless something is
 * wrong or `--verbose` asks for progress.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Where messages go; replaceable for tests. */
export let sink: (text: string) => void = (text) => {
  Deno.stderr.writeSync(encoder.encode(text));
};

/** Replaces the sink; returns the previous one. */
export function setSink(next: (text: string) => void): (text: string) => void {
  const previous = sink;
  sink = next;
  return previous;
}

let verbose = false;

/** Turns progress messages on or off. */
export function setVerbose(on: boolean): void {
  verbose = on;
}

/** Whether progress messages are on. */
export function isVerbose(): boolean {
  return verbose;
}

function line(prefix: string, message: string) {
  sink(`vmrunner: ${prefix}${message.replaceAll("\n", "\n  ")}\n`);
}

/** An error: what failed and what to try. */
export function error(message: string): void {
  line("error: ", message);
}

/** Something the user should know, though the run goes on. */
export function warn(message: string): void {
  line("warning: ", message);
}

/** Progress, shown with --verbose. */
export function debug(message: string): void {
  if (verbose) line("", message);
}

/** Text the user asked for, such as the -debug document, as is. */
export function info(text: string): void {
  sink(text.endsWith("\n") ? text : `${text}\n`);
}
