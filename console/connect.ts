/**
 * Reaching a VM's COM1 by its pipe name, on whatever system this is, in
 * either role: as the client of the pipe the VM serves (the default), or as
 * the server the VM connects to.
 *
 * @module
 */

import { connectNamedPipe, createNamedPipeServer } from "./named_pipe.ts";
import { UNIX_PIPE_DIRECTORY, unixSocketPath } from "./pipe_name.ts";
import type { ConsoleTransport } from "./transport.ts";
import {
  type ConnectOptions,
  connectUnixSocket,
  fromConnection,
} from "./unix_socket.ts";

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

/** Options of {@linkcode serveConsole}. */
export interface ServeOptions {
  /** Stops waiting for the VM: `accepted` rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** A console pipe vmrunner serves; the VM connects to it as a client. */
export interface ConsoleServer {
  /**
   * Resolves with the VM's connection once it has connected. Rejects if
   * the server is closed or aborted first.
   */
  readonly accepted: Promise<ConsoleTransport>;
  /** Stops waiting for the VM, or closes its connection. */
  close(): Promise<void>;
}

/**
 * Serves the console pipe `\\.\pipe\NAME` before the VM exists, for a VM
 * to connect to as a client (HCS.md 7: Hyper-V does so when a server is
 * already there at start, once, and never reconnects). On Windows it is a
 * one-instance named pipe that nobody else may add instances to; elsewhere
 * the Unix socket that stands for it, which the simulator's VM connects to
 * in the same way.
 *
 * @throws {Error} when the name is already served, naming the pipe.
 */
export async function serveConsole(
  pipeName: string,
  options: ServeOptions = {},
): Promise<ConsoleServer> {
  if (Deno.build.os === "windows") {
    const server = createNamedPipeServer(pipeName, options);
    const accepted = server.connected.then(() => server);
    accepted.catch(() => {}); // whoever awaits it sees the failure
    return { accepted, close: () => server.close() };
  }
  return await serveUnixSocket(unixSocketPath(pipeName), options);
}

async function serveUnixSocket(
  path: string,
  { signal }: ServeOptions,
): Promise<ConsoleServer> {
  signal?.throwIfAborted();
  await ensurePipeDirectory();
  let listener: Deno.UnixListener;
  try {
    listener = Deno.listen({ transport: "unix", path });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Deno.errors.AddrInUse(
        `Cannot serve the console socket ${path}: it exists already, so ` +
          "another VM or program has the name. Choose another id; if " +
          "nothing uses it, delete the file",
      );
    }
    throw error;
  }
  let listening = true;
  const stopListening = () => {
    if (!listening) return;
    listening = false;
    listener.close();
    // Nobody else is to connect; the VM keeps its connection.
    try {
      Deno.removeSync(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  };
  const onAbort = () => stopListening();
  signal?.addEventListener("abort", onAbort, { once: true });
  const accepted = listener.accept().then(
    (conn) => {
      signal?.removeEventListener("abort", onAbort);
      stopListening();
      return fromConnection(conn);
    },
    (error) => {
      signal?.removeEventListener("abort", onAbort);
      if (signal?.aborted) throw signal.reason;
      if (!listening) {
        throw new Deno.errors.BadResource(
          `Stopped serving ${path} before the VM connected`,
        );
      }
      throw error;
    },
  );
  accepted.catch(() => {}); // whoever awaits it sees the failure
  return {
    accepted,
    async close() {
      stopListening();
      await accepted.then((transport) => transport.close(), () => {});
    },
  };
}

/** The simulator's socket folder, made as it makes it: open to all users. */
async function ensurePipeDirectory(): Promise<void> {
  try {
    await Deno.mkdir(UNIX_PIPE_DIRECTORY);
    await Deno.chmod(UNIX_PIPE_DIRECTORY, 0o1777);
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
}
