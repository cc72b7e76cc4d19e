/**
 * The byte channel to a VM's serial console, whatever carries it.
 *
 * @module
 */

/** How long a console pipe is waited for unless told otherwise, in ms. */
export const DEFAULT_CONSOLE_TIMEOUT_MS = 30_000;

/**
 * A duplex byte stream to a VM's serial console (COM1 / ttyS0).
 *
 * Bytes pass through unchanged in both directions. The readable side ends
 * (closes) when the other end goes away and errors on any other failure.
 */
export interface ConsoleTransport {
  /** Bytes from the VM, in order, in chunks of any size. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the VM; each write resolves once the bytes are handed over. */
  readonly writable: WritableStream<Uint8Array>;
  /**
   * Cancels pending I/O, waits for it to finish and releases every OS
   * resource. Safe to call more than once; later calls return the same
   * promise.
   */
  close(): Promise<void>;
}
