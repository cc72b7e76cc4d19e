/**
 * Connecting to a VM's COM1 by its pipe name, on whatever system this is.
 *
 * @module
 */

import { connectNamedPipe } from "./named_pipe.ts";
import { unixSocketPath } from "./pipe_name.ts";
import type { ConsoleTransport } from "./transport.ts";
import { type ConnectOptions, connectUnixSocket } from "./unix_socket.ts";

export type { ConnectOptions };

/**
 * Opens the console pipe `\\.\pipe\NAME` as a client, retrying until the
 * VM has created it: on Windows the named pipe itself, elsewhere the Unix
 * socket that stands for it.
 */
export function connectConsole(
  pipeName: string,
  options: ConnectOptions = {},
): Promise<ConsoleTransport> {
  return Deno.build.os === "windows"
    ? connectNamedPipe(pipeName, options)
    : connectUnixSocket(unixSocketPath(pipeName), options);
}
