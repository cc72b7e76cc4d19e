/**
 * Processes started in a compute system through HcsCreateProcess, which
 * needs a guest agent (GCS) to serve it.
 *
 * @module
 */

import type { ComputeSystem } from "./compute_system.ts";
import { HcsError, parseErrorEvents } from "./hcs_error.ts";
import { failed, isAlreadyStopped, isNotFound } from "./hresult.ts";
import {
  dispatcherFor,
  NOTIFICATION,
  NotificationInbox,
  WaitAbandonedError,
} from "./notifications.ts";
import {
  decodeProcessInformation,
  outPointer,
  pointerFrom,
  PROCESS_INFORMATION_SIZE,
  type ProcessInformation,
  takeWideString,
  wideString,
} from "./vmcompute_ffi.ts";

/** What to run: a subset of schema-2 `ProcessParameters`. */
export interface ProcessParameters {
  /** The program and its arguments (Linux guests). */
  CommandArgs?: string[];
  /** A command line (Windows guests). */
  CommandLine?: string;
  /** The working directory. */
  WorkingDirectory?: string;
  /** Environment variables. */
  Environment?: Record<string, string>;
  /** Allocate a terminal. */
  EmulateConsole?: boolean;
  /** Ask for a stdin pipe. */
  CreateStdInPipe?: boolean;
  /** Ask for a stdout pipe. */
  CreateStdOutPipe?: boolean;
  /** Ask for a stderr pipe. */
  CreateStdErrPipe?: boolean;
}

/** A process in a compute system. Close it when done. */
export class HcsProcess implements AsyncDisposable {
  /** The system it runs in. */
  readonly system: ComputeSystem;
  /** The guest's process id and the stdio handles HCS returned. */
  readonly info: ProcessInformation;
  #handle: Deno.PointerValue;
  #callback: Deno.PointerValue = null;
  #contextKey = 0;
  readonly #inbox = new NotificationInbox();
  #closing: Promise<void> | undefined;

  private constructor(
    system: ComputeSystem,
    handle: Deno.PointerValue,
    info: ProcessInformation,
  ) {
    this.system = system;
    this.#handle = handle;
    this.info = info;
  }

  /** Starts a process in `system` (HcsCreateProcess). */
  static async create(
    system: ComputeSystem,
    parameters: ProcessParameters,
  ): Promise<HcsProcess> {
    const lib = system.library;
    const infoBuffer = new Uint8Array(PROCESS_INFORMATION_SIZE);
    const processOut = outPointer();
    const resultOut = outPointer();
    const hr = await lib.symbols.HcsCreateProcess(
      system.handle,
      wideString(JSON.stringify(parameters)),
      infoBuffer,
      processOut,
      resultOut,
    );
    const resultDocument = takeWideString(lib, resultOut);
    if (failed(hr)) {
      throw new HcsError({
        operation: "HcsCreateProcess",
        id: system.id,
        hresult: hr,
        events: parseErrorEvents(resultDocument),
      });
    }
    const process = new HcsProcess(
      system,
      pointerFrom(processOut),
      decodeProcessInformation(infoBuffer),
    );
    const dispatcher = dispatcherFor(lib);
    const { key, context } = dispatcher.attach(process.#inbox);
    process.#contextKey = key;
    const callbackOut = outPointer();
    const registered = await lib.symbols.HcsRegisterProcessCallback(
      process.#handle,
      dispatcher.pointer,
      context,
      callbackOut,
    );
    if (failed(registered)) {
      await process.close();
      throw new HcsError({
        operation: "HcsRegisterProcessCallback",
        id: system.id,
        hresult: registered,
      });
    }
    process.#callback = pointerFrom(callbackOut);
    return process;
  }

  /**
   * Waits for the process to exit and returns its exit code (-1 when HCS
   * could not tell).
   */
  async wait(signal?: AbortSignal): Promise<number> {
    const notification = await this.#inbox.wait(
      [NOTIFICATION.ProcessExited],
      { signal },
    );
    if (notification.type !== NOTIFICATION.ProcessExited) {
      throw new HcsError({
        operation: "HcsCreateProcess",
        id: this.system.id,
        hresult: notification.status,
        detail: "The compute system ended before the process did",
      });
    }
    const propertiesOut = outPointer();
    const resultOut = outPointer();
    const lib = this.system.library;
    const hr = await lib.symbols.HcsGetProcessProperties(
      this.#live(),
      propertiesOut,
      resultOut,
    );
    const properties = takeWideString(lib, propertiesOut);
    const resultDocument = takeWideString(lib, resultOut);
    if (failed(hr)) {
      throw new HcsError({
        operation: "HcsGetProcessProperties",
        id: this.system.id,
        hresult: hr,
        events: parseErrorEvents(resultDocument),
      });
    }
    const status = JSON.parse(properties || "{}");
    return status.LastWaitResult ? -1 : Number(status.ExitCode ?? -1);
  }

  /**
   * Tells the guest that the process's stdin has ended (HcsModifyProcess
   * CloseHandle). The caller closes its own end of the pipe afterwards.
   */
  async closeStdin(): Promise<void> {
    const lib = this.system.library;
    const resultOut = outPointer();
    const hr = await lib.symbols.HcsModifyProcess(
      this.#live(),
      wideString(
        JSON.stringify({
          Operation: "CloseHandle",
          CloseHandle: { Handle: "StdIn" },
        }),
      ),
      resultOut,
    );
    const resultDocument = takeWideString(lib, resultOut);
    if (failed(hr)) {
      throw new HcsError({
        operation: "HcsModifyProcess",
        id: this.system.id,
        hresult: hr,
        events: parseErrorEvents(resultDocument),
      });
    }
  }

  /** Ends the process; one that has already exited counts as ended. */
  async terminate(): Promise<void> {
    const lib = this.system.library;
    const resultOut = outPointer();
    const hr = await lib.symbols.HcsTerminateProcess(this.#live(), resultOut);
    const resultDocument = takeWideString(lib, resultOut);
    if (failed(hr) && !isAlreadyStopped(hr) && !isNotFound(hr)) {
      throw new HcsError({
        operation: "HcsTerminateProcess",
        id: this.system.id,
        hresult: hr,
        events: parseErrorEvents(resultDocument),
      });
    }
  }

  /** Unregisters the callback and closes the handle. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Closes the handle. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close() {
    const lib = this.system.library;
    try {
      if (this.#callback !== null) {
        await lib.symbols.HcsUnregisterProcessCallback(this.#callback);
        this.#callback = null;
      }
      if (this.#contextKey) dispatcherFor(lib).detach(this.#contextKey);
      if (this.#handle !== null) {
        await lib.symbols.HcsCloseProcess(this.#handle);
      }
    } finally {
      this.#handle = null;
      this.#inbox.close();
    }
  }

  #live(): Deno.PointerValue {
    if (this.#handle === null) {
      throw new HcsError({
        operation: "HcsProcess",
        id: this.system.id,
        hresult: 0x80070006,
        detail: "The process handle is already closed",
        cause: new WaitAbandonedError("closed", "closed"),
      });
    }
    return this.#handle;
  }
}
