/**
 * Names of the console pipe, and the one rule that maps a Windows pipe name
 * to a Unix socket where HCS is simulated.
 *
 * @module
 */

const PIPE_PREFIX = "\\\\.\\pipe\\";

/**
 * Where the test bed's simulator puts the Unix socket that stands in for a
 * named pipe: `\\.\pipe\NAME` is `/tmp/hcs-pipe/NAME`.
 */
export const UNIX_PIPE_DIRECTORY = "/tmp/hcs-pipe";

/** The pipe a VM's COM1 is connected to: `\\.\pipe\<id>-console`. */
export function consolePipeName(id: string): string {
  return `${PIPE_PREFIX}${id}-console`;
}

/** `NAME` of `\\.\pipe\NAME`. */
export function pipeBaseName(pipeName: string): string {
  if (!pipeName.startsWith(PIPE_PREFIX)) {
    throw new TypeError(
      `Cannot use "${pipeName}" as a named pipe: it must start with ${PIPE_PREFIX}`,
    );
  }
  return pipeName.slice(PIPE_PREFIX.length);
}

/** The Unix socket that stands for a named pipe outside Windows. */
export function unixSocketPath(pipeName: string): string {
  return `${UNIX_PIPE_DIRECTORY}/${pipeBaseName(pipeName)}`;
}
