/**
 * Compute systems: create or open one, start it, stop it, ask about it, and
 * close it, with each asynchronous HCS operation awaited to its end.
 *
 * @module
 */

import { HcsError, parseErrorEvents } from "./hcs_error.ts";
import {
  failed,
  HRESULT,
  isAlreadyStopped,
  isNotFound,
  isPending,
} from "./hresult.ts";
import { vmcompute } from "./library.ts";
import {
  dispatcherFor,
  NOTIFICATION,
  type Notification,
  NotificationInbox,
  notificationName,
  WaitAbandonedError,
} from "./notifications.ts";
import {
  type DEFAULT_TIMEOUTS,
  type HcsTimeouts,
  hcsTimeouts,
} from "./timeouts.ts";
import {
  outPointer,
  pointerFrom,
  takeWideString,
  type Vmcompute,
  wideString,
} from "./vmcompute_ffi.ts";

/** Options shared by every way of getting a {@linkcode ComputeSystem}. */
export interface HcsOptions {
  /** The HCS library to use; by default `vmcompute.dll`. */
  library?: Vmcompute;
  /** Overrides of the default timeouts (`hcs/timeouts.ts`). */
  timeouts?: Partial<HcsTimeouts>;
  /**
   * Stops waiting for creation to complete; the half-made system is then
   * terminated and closed, and the signal's reason thrown.
   */
  signal?: AbortSignal;
}

/** How a compute system ended, from its `SystemExited` notification. */
export interface SystemExit {
  /** 0 for a requested stop; `0xC0370106` when it died unexpectedly. */
  status: number;
  /** Whether HCS reported the exit as unexpected. */
  unexpected: boolean;
  /** The notification's data, when HCS sent any. */
  data: string;
}

/** One entry of {@linkcode ComputeSystem.enumerate}. */
export interface ComputeSystemSummary {
  /** The id the system was created with. */
  id: string;
  /** `Created`, `Running`, `Paused`, `Stopped`, ... as HCS reports it. */
  state: string;
  /** The owner tag from the creating document. */
  owner: string;
  /** HCS's GUID for the VM, when reported. */
  runtimeId?: string;
  /** Every field HCS reported. */
  raw: Record<string, unknown>;
}

/** Called with the result string and HRESULT of one raw HCS call. */
type RawCall = (result: BigUint64Array<ArrayBuffer>) => Promise<number>;

const EMPTY = wideString("");

/**
 * A handle to an HCS compute system.
 *
 * Every method that changes the system waits until HCS reports the
 * operation complete, or throws an {@linkcode HcsError}. Dispose it (or
 * call {@linkcode ComputeSystem.stop} and {@linkcode ComputeSystem.close})
 * to make sure the VM is gone and the handle closed.
 */
export class ComputeSystem implements AsyncDisposable {
  /** The id the system was created or opened with. */
  readonly id: string;
  readonly #lib: Vmcompute;
  readonly #timeouts: HcsTimeouts;
  readonly #inbox = new NotificationInbox();
  #handle: Deno.PointerValue;
  #callback: Deno.PointerValue = null;
  #contextKey = 0;
  #closing: Promise<void> | undefined;

  private constructor(
    id: string,
    lib: Vmcompute,
    handle: Deno.PointerValue,
    timeouts: HcsTimeouts,
  ) {
    this.id = id;
    this.#lib = lib;
    this.#handle = handle;
    this.#timeouts = timeouts;
  }

  /**
   * Creates a compute system from a schema-2 document and waits until HCS
   * has created it. It is not started.
   */
  static async create(
    id: string,
    document: string | object,
    options: HcsOptions = {},
  ): Promise<ComputeSystem> {
    const lib = options.library ?? vmcompute();
    const timeouts = hcsTimeouts(options.timeouts);
    const json = typeof document === "string"
      ? document
      : JSON.stringify(document);
    const handleOut = outPointer();
    const resultOut = outPointer();
    const started = Date.now();
    const hr = await withDeadline(
      lib.symbols.HcsCreateComputeSystem(
        wideString(id),
        wideString(json),
        null,
        handleOut,
        resultOut,
      ),
      timeouts.createMs,
      "HcsCreateComputeSystem",
      id,
    );
    const resultDocument = takeWideString(lib, resultOut);
    const handle = pointerFrom(handleOut);
    // The handle is valid on success and while pending; not otherwise.
    if (failed(hr) && !isPending(hr)) {
      if (handle !== null) await lib.symbols.HcsCloseComputeSystem(handle);
      throw new HcsError({
        operation: "HcsCreateComputeSystem",
        id,
        hresult: hr,
        events: parseErrorEvents(resultDocument),
      });
    }
    const system = new ComputeSystem(id, lib, handle, timeouts);
    try {
      await system.#register();
      if (isPending(hr)) {
        await system.#awaitCompletion(
          "HcsCreateComputeSystem",
          NOTIFICATION.SystemCreateCompleted,
          timeouts.createMs,
          options.signal,
          started,
        );
      }
    } catch (error) {
      // A half-created system must not outlive this call.
      await system.terminate().catch(() => {});
      await system.close();
      throw error;
    }
    return system;
  }

  /** Opens a handle to an existing compute system, made by any process. */
  static async open(
    id: string,
    options: HcsOptions = {},
  ): Promise<ComputeSystem> {
    const lib = options.library ?? vmcompute();
    const timeouts = hcsTimeouts(options.timeouts);
    const handleOut = outPointer();
    const resultOut = outPointer();
    const hr = await withDeadline(
      lib.symbols.HcsOpenComputeSystem(wideString(id), handleOut, resultOut),
      timeouts.callMs,
      "HcsOpenComputeSystem",
      id,
    );
    const resultDocument = takeWideString(lib, resultOut);
    if (failed(hr)) {
      throw new HcsError({
        operation: "HcsOpenComputeSystem",
        id,
        hresult: hr,
        events: parseErrorEvents(resultDocument),
      });
    }
    const system = new ComputeSystem(
      id,
      lib,
      pointerFrom(handleOut),
      timeouts,
    );
    try {
      await system.#register();
    } catch (error) {
      await system.close();
      throw error;
    }
    return system;
  }

  /**
   * Lists the compute systems HCS knows, of every process and user.
   * `query` is a schema-1 `ComputeSystemQuery` such as `{ Owners: [...] }`.
   */
  static async enumerate(
    query: Record<string, unknown> = {},
    options: HcsOptions = {},
  ): Promise<ComputeSystemSummary[]> {
    const lib = options.library ?? vmcompute();
    const timeouts = hcsTimeouts(options.timeouts);
    const listOut = outPointer();
    const resultOut = outPointer();
    const hr = await withDeadline(
      lib.symbols.HcsEnumerateComputeSystems(
        wideString(JSON.stringify(query)),
        listOut,
        resultOut,
      ),
      timeouts.callMs,
      "HcsEnumerateComputeSystems",
    );
    const list = takeWideString(lib, listOut);
    const resultDocument = takeWideString(lib, resultOut);
    if (failed(hr)) {
      throw new HcsError({
        operation: "HcsEnumerateComputeSystems",
        hresult: hr,
        events: parseErrorEvents(resultDocument),
      });
    }
    const parsed: unknown = list.trim() === "" ? [] : JSON.parse(list);
    if (!Array.isArray(parsed)) return [];
    return parsed.map((entry: Record<string, unknown>) => ({
      id: String(entry.Id ?? ""),
      state: String(entry.State ?? "Unknown"),
      owner: String(entry.Owner ?? ""),
      runtimeId: typeof entry.RuntimeId === "string"
        ? entry.RuntimeId
        : undefined,
      raw: entry,
    }));
  }

  /** Whether the handle has been closed. */
  get closed(): boolean {
    return this.#handle === null;
  }

  /** How the system ended, once HCS has said it did; else `undefined`. */
  get exit(): SystemExit | undefined {
    const notification = this.#inbox.peek(NOTIFICATION.SystemExited);
    return notification && toExit(notification);
  }

  /** Every notification received on this handle, oldest first. */
  get notifications(): readonly Notification[] {
    return this.#inbox.history;
  }

  /**
   * Waits until the system has exited, however that happens. Resolves with
   * `undefined` if HCS disconnects or the handle is closed first.
   */
  async waitForExit(
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<SystemExit | undefined> {
    try {
      const notification = await this.#inbox.wait(
        [NOTIFICATION.SystemExited],
        options,
      );
      return notification.type === NOTIFICATION.SystemExited
        ? toExit(notification)
        : undefined;
    } catch (error) {
      if (error instanceof WaitAbandonedError && error.reason !== "timeout") {
        return undefined;
      }
      throw error;
    }
  }

  /**
   * Starts the system and waits until HCS reports it started. Aborting
   * `signal` stops the wait (the system may still start) and throws the
   * signal's reason.
   */
  async start(signal?: AbortSignal): Promise<void> {
    await this.#operation(
      "HcsStartComputeSystem",
      NOTIFICATION.SystemStartCompleted,
      this.#timeouts.startMs,
      signal,
      (result) =>
        this.#lib.symbols.HcsStartComputeSystem(
          this.#live("HcsStartComputeSystem"),
          EMPTY,
          result,
        ),
    );
  }

  /** Pauses a running system. */
  async pause(): Promise<void> {
    await this.#operation(
      "HcsPauseComputeSystem",
      NOTIFICATION.SystemPauseCompleted,
      this.#timeouts.callMs,
      undefined,
      (result) =>
        this.#lib.symbols.HcsPauseComputeSystem(
          this.#live("HcsPauseComputeSystem"),
          EMPTY,
          result,
        ),
    );
  }

  /** Resumes a paused system. */
  async resume(): Promise<void> {
    await this.#operation(
      "HcsResumeComputeSystem",
      NOTIFICATION.SystemResumeCompleted,
      this.#timeouts.callMs,
      undefined,
      (result) =>
        this.#lib.symbols.HcsResumeComputeSystem(
          this.#live("HcsResumeComputeSystem"),
          EMPTY,
          result,
        ),
    );
  }

  /**
   * Asks the guest to shut down and waits until the system has exited. A
   * system that has already stopped, or no longer exists, counts as shut
   * down.
   */
  async shutdown(timeoutMs: number = this.#timeouts.shutdownMs): Promise<
    void
  > {
    await this.#stopOperation("HcsShutdownComputeSystem", timeoutMs);
  }

  /** Ends the system at once and waits until it has exited. */
  async terminate(timeoutMs: number = this.#timeouts.terminateMs): Promise<
    void
  > {
    await this.#stopOperation("HcsTerminateComputeSystem", timeoutMs);
  }

  /**
   * Stops the system however it takes: a graceful shutdown, then
   * termination if that fails or runs out of time. Errors of the shutdown
   * are expected and swallowed; an error of the termination is thrown.
   */
  async stop(
    options: { shutdownMs?: number; terminateMs?: number } = {},
  ): Promise<void> {
    if (this.closed || this.exit) return;
    const shutdownMs = options.shutdownMs ?? this.#timeouts.shutdownMs;
    if (shutdownMs > 0) {
      try {
        await this.shutdown(shutdownMs);
        return;
      } catch {
        // Fall through to termination, which either works or says why.
      }
    }
    await this.terminate(options.terminateMs);
  }

  /** Queries the system's properties (a schema-2 `PropertyQuery`). */
  async properties(
    query: Record<string, unknown> = {},
  ): Promise<Record<string, unknown>> {
    const propertiesOut = outPointer();
    let json = "";
    await this.#operation(
      "HcsGetComputeSystemProperties",
      undefined,
      this.#timeouts.callMs,
      undefined,
      async (result) => {
        const hr = await this.#lib.symbols.HcsGetComputeSystemProperties(
          this.#live("HcsGetComputeSystemProperties"),
          wideString(JSON.stringify(query)),
          propertiesOut,
          result,
        );
        json = takeWideString(this.#lib, propertiesOut);
        return hr;
      },
    );
    return json.trim() === "" ? {} : JSON.parse(json);
  }

  /**
   * Closes the handle: unregisters the callback, then closes. Safe to call
   * more than once. With `ShouldTerminateOnLastHandleClosed` in the
   * document, closing the last handle also ends the VM.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Stops the system if it still runs, then closes the handle. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.stop();
    } finally {
      await this.close();
    }
  }

  /** The raw handle, for {@linkcode createProcessHandle}; null when closed. */
  get handle(): Deno.PointerValue {
    return this.#handle;
  }

  /** The library this handle belongs to. */
  get library(): Vmcompute {
    return this.#lib;
  }

  async #close(): Promise<void> {
    const handle = this.#handle;
    if (handle === null) return;
    try {
      if (this.#callback !== null) {
        // Unregistering waits for callbacks still running; it is declared
        // nonblocking so that the JavaScript thread can run them meanwhile.
        await this.#lib.symbols.HcsUnregisterComputeSystemCallback(
          this.#callback,
        );
        this.#callback = null;
      }
      dispatcherFor(this.#lib).detach(this.#contextKey);
      await this.#lib.symbols.HcsCloseComputeSystem(handle);
    } finally {
      this.#handle = null;
      this.#inbox.close();
    }
  }

  async #register(): Promise<void> {
    const dispatcher = dispatcherFor(this.#lib);
    const { key, context } = dispatcher.attach(this.#inbox);
    this.#contextKey = key;
    const callbackOut = outPointer();
    const hr = await this.#lib.symbols.HcsRegisterComputeSystemCallback(
      this.#live("HcsRegisterComputeSystemCallback"),
      dispatcher.pointer,
      context,
      callbackOut,
    );
    if (failed(hr)) {
      throw new HcsError({
        operation: "HcsRegisterComputeSystemCallback",
        id: this.id,
        hresult: hr,
      });
    }
    this.#callback = pointerFrom(callbackOut);
  }

  #live(operation: string): Deno.PointerValue {
    if (this.#handle === null || this.#closing) {
      throw new HcsError({
        operation,
        id: this.id,
        hresult: 0x80070006,
        detail: "The compute system's handle is already closed",
      });
    }
    return this.#handle;
  }

  /** Calls an export; if it is pending, waits for `expected`. */
  async #operation(
    operation: string,
    expected: number | undefined,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    call: RawCall,
  ): Promise<void> {
    const started = Date.now();
    const resultOut = outPointer();
    const hr = await withDeadline(
      call(resultOut),
      timeoutMs,
      operation,
      this.id,
    );
    const resultDocument = takeWideString(this.#lib, resultOut);
    if (isPending(hr) && expected !== undefined) {
      await this.#awaitCompletion(
        operation,
        expected,
        timeoutMs,
        signal,
        started,
      );
      return;
    }
    if (failed(hr)) {
      throw new HcsError({
        operation,
        id: this.id,
        hresult: hr,
        events: parseErrorEvents(resultDocument),
      });
    }
  }

  /** Waits for `expected` until `timeoutMs` after `started`. */
  async #awaitCompletion(
    operation: string,
    expected: number,
    timeoutMs: number,
    signal?: AbortSignal,
    started: number = Date.now(),
  ): Promise<void> {
    let notification: Notification;
    try {
      notification = await this.#inbox.wait([expected], {
        timeoutMs: Math.max(0, timeoutMs - (Date.now() - started)),
        signal,
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw new HcsError({
        operation,
        id: this.id,
        hresult: HRESULT.WAIT_TIMEOUT,
        detail: error instanceof WaitAbandonedError &&
            error.reason === "timeout"
          ? `HCS did not report ${notificationName(expected)} within ${
            timeoutMs / 1000
          } s`
          : `The handle was closed while waiting for ${
            notificationName(expected)
          }`,
        cause: error,
      });
    }
    if (notification.type === expected) {
      if (failed(notification.status)) {
        throw new HcsError({
          operation,
          id: this.id,
          hresult: notification.status,
          events: parseErrorEvents(notification.data),
        });
      }
      return;
    }
    if (notification.type === NOTIFICATION.ServiceDisconnect) {
      throw new HcsError({
        operation,
        id: this.id,
        hresult: HRESULT.SERVICE_DISCONNECT,
      });
    }
    throw new HcsError({
      operation,
      id: this.id,
      hresult: failed(notification.status)
        ? notification.status
        : HRESULT.UNEXPECTED_EXIT,
      detail: `The compute system exited before ${notificationName(expected)}`,
      events: parseErrorEvents(notification.data),
    });
  }

  async #stopOperation(
    operation: "HcsShutdownComputeSystem" | "HcsTerminateComputeSystem",
    timeoutMs: number,
  ): Promise<void> {
    if (this.exit) return;
    const started = Date.now();
    const resultOut = outPointer();
    const hr = await withDeadline(
      this.#lib.symbols[operation](this.#live(operation), EMPTY, resultOut),
      timeoutMs,
      operation,
      this.id,
    );
    const resultDocument = takeWideString(this.#lib, resultOut);
    if (isAlreadyStopped(hr) || isNotFound(hr)) return;
    if (failed(hr) && !isPending(hr)) {
      throw new HcsError({
        operation,
        id: this.id,
        hresult: hr,
        events: parseErrorEvents(resultDocument),
      });
    }
    // Pending or done: either way the exit is what tells us it worked.
    const remaining = Math.max(0, timeoutMs - (Date.now() - started));
    let exit: SystemExit | undefined;
    try {
      exit = await this.waitForExit({ timeoutMs: remaining });
    } catch (error) {
      throw new HcsError({
        operation,
        id: this.id,
        hresult: HRESULT.WAIT_TIMEOUT,
        detail: `The compute system did not exit within ${timeoutMs / 1000} s`,
        cause: error,
      });
    }
    if (exit === undefined && !this.closed) {
      throw new HcsError({
        operation,
        id: this.id,
        hresult: HRESULT.SERVICE_DISCONNECT,
      });
    }
  }
}

function toExit(notification: Notification): SystemExit {
  return {
    status: notification.status >>> 0,
    unexpected: (notification.status >>> 0) === HRESULT.UNEXPECTED_EXIT,
    data: notification.data,
  };
}

/**
 * Races a raw call against its deadline. A call HCS never returns from is
 * abandoned, not cancelled: its thread stays blocked in the service, and
 * whatever it would have returned is leaked. Nothing better is possible from
 * outside the service.
 */
async function withDeadline<T>(
  call: Promise<T>,
  timeoutMs: number,
  operation: string,
  id?: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new HcsError({
            operation,
            id,
            hresult: HRESULT.WAIT_TIMEOUT,
            detail: `The call did not return within ${timeoutMs / 1000} s; ` +
              "the Host Compute Service may be hung",
          }),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([call, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
