/**
 * HCS notifications: one process-wide callback that hands each notification
 * to the inbox of the handle it concerns, and the inboxes that callers wait
 * on.
 *
 * HCS calls the callback from threads of its own; Deno then blocks that
 * thread until the JavaScript thread has run the callback. So the callback
 * only decodes the notification and queues it: blocking or throwing there
 * would stall the service. The `context` HCS passes back is a small integer
 * key, never a real pointer, so a late notification for a handle we have
 * already forgotten is simply dropped.
 *
 * @module
 */

import {
  NOTIFICATION_CALLBACK,
  readWideString,
  type Vmcompute,
} from "./vmcompute_ffi.ts";

/** `HCS_NOTIFICATIONS` values (HCS.md section 3.3). */
export const NOTIFICATION = {
  SystemExited: 0x00000001,
  SystemCreateCompleted: 0x00000002,
  SystemStartCompleted: 0x00000003,
  SystemPauseCompleted: 0x00000004,
  SystemResumeCompleted: 0x00000005,
  SystemCrashReport: 0x00000006,
  SystemSaveCompleted: 0x00000008,
  SystemShutdownCompleted: 0x0000000A,
  ProcessExited: 0x00010000,
  ServiceDisconnect: 0x01000000,
} as const;

const NOTIFICATION_NAMES = new Map<number, string>(
  Object.entries(NOTIFICATION).map(([name, value]) => [value, name]),
);

/** The name of a notification type, for messages and logs. */
export function notificationName(type: number): string {
  return NOTIFICATION_NAMES.get(type) ??
    `notification 0x${type.toString(16)}`;
}

/** A notification as HCS delivered it. */
export interface Notification {
  /** One of {@linkcode NOTIFICATION}. */
  type: number;
  /** The HRESULT of the completed operation or of the exit. */
  status: number;
  /** `notificationData`, decoded; often empty, sometimes JSON. */
  data: string;
}

/** Types that, once delivered, stay true for the life of the handle. */
const STICKY = new Set<number>([
  NOTIFICATION.SystemExited,
  NOTIFICATION.ProcessExited,
  NOTIFICATION.ServiceDisconnect,
]);

/** Why {@linkcode NotificationInbox.wait} gave up. */
export class WaitAbandonedError extends Error {
  /** Always `"WaitAbandonedError"`. */
  override name = "WaitAbandonedError";
  /** `"timeout"`, `"closed"` or `"aborted"`. */
  readonly reason: "timeout" | "closed" | "aborted";

  constructor(reason: "timeout" | "closed" | "aborted", message: string) {
    super(message);
    this.reason = reason;
  }
}

interface Waiter {
  types: ReadonlySet<number>;
  resolve(notification: Notification): void;
  reject(error: Error): void;
}

/** Options of {@linkcode NotificationInbox.wait}. */
export interface WaitOptions {
  /** Give up after this many milliseconds; no limit when absent. */
  timeoutMs?: number;
  /** Give up when this signal aborts. */
  signal?: AbortSignal;
}

/**
 * The notifications of one handle. Each is delivered to one waiter; one
 * that arrives before anybody waits is kept until somebody does. Exit and
 * service-disconnect notifications are kept for good, and end any wait.
 */
export class NotificationInbox {
  #kept = new Map<number, Notification>();
  #waiters = new Set<Waiter>();
  #closed = false;
  /** Every notification delivered, in order; for logs and tests. */
  readonly history: Notification[] = [];

  /** Called by the dispatcher with each notification for this handle. */
  deliver(notification: Notification): void {
    if (this.#closed) return;
    this.history.push(notification);
    for (const waiter of this.#waiters) {
      if (
        waiter.types.has(notification.type) || STICKY.has(notification.type)
      ) {
        this.#waiters.delete(waiter);
        waiter.resolve(notification);
        if (!STICKY.has(notification.type)) return;
      }
    }
    this.#kept.set(notification.type, notification);
  }

  /** The kept notification of a type, without waiting. */
  peek(type: number): Notification | undefined {
    return this.#kept.get(type);
  }

  /**
   * Waits for a notification of one of `types`. An exit or a service
   * disconnect ends the wait too and is returned: the caller decides what it
   * means.
   */
  wait(types: readonly number[], options: WaitOptions = {}): Promise<
    Notification
  > {
    for (const type of [...types, ...STICKY]) {
      const kept = this.#kept.get(type);
      if (kept) {
        if (!STICKY.has(type)) this.#kept.delete(type);
        return Promise.resolve(kept);
      }
    }
    if (this.#closed) {
      return Promise.reject(
        new WaitAbandonedError("closed", "The handle was closed"),
      );
    }
    const { timeoutMs, signal } = options;
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () =>
        finish(
          undefined,
          new WaitAbandonedError("aborted", "The wait was aborted"),
        );
      const finish = (value?: Notification, error?: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#waiters.delete(waiter);
        if (error) reject(error);
        else resolve(value!);
      };
      const waiter: Waiter = {
        types: new Set(types),
        resolve: (value) => finish(value),
        reject: (error) => finish(undefined, error),
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() =>
          finish(
            undefined,
            new WaitAbandonedError(
              "timeout",
              `No ${
                types.map(notificationName).join(" or ")
              } within ${timeoutMs} ms`,
            ),
          ), timeoutMs);
      }
      this.#waiters.add(waiter);
    });
  }

  /** Ends every wait; later notifications are ignored. */
  close(): void {
    this.#closed = true;
    for (const waiter of [...this.#waiters]) {
      waiter.reject(new WaitAbandonedError("closed", "The handle was closed"));
    }
  }
}

/**
 * Owns the single notification callback of a loaded library and routes each
 * notification to an inbox by its context key.
 */
export class NotificationDispatcher {
  #inboxes = new Map<number, NotificationInbox>();
  #nextKey = 1;
  #callback: Deno.UnsafeCallback<typeof NOTIFICATION_CALLBACK>;

  constructor() {
    this.#callback = new Deno.UnsafeCallback(
      NOTIFICATION_CALLBACK,
      (type, context, status, data) => {
        // Never throw here: see the module comment.
        try {
          const key = Number(Deno.UnsafePointer.value(context));
          this.#inboxes.get(key)?.deliver({
            type,
            status,
            data: readWideString(data),
          });
        } catch {
          // A notification we cannot decode is one we cannot act on.
        }
      },
    );
  }

  /** The function pointer to register with HCS. */
  get pointer(): Deno.PointerObject<typeof NOTIFICATION_CALLBACK> {
    return this.#callback.pointer;
  }

  /**
   * Adds an inbox and returns the context to register it with. While any
   * inbox is attached the callback keeps the event loop alive, since a
   * notification may still arrive.
   */
  attach(
    inbox: NotificationInbox,
  ): { key: number; context: Deno.PointerValue } {
    const key = this.#nextKey++;
    this.#inboxes.set(key, inbox);
    this.#callback.ref();
    return { key, context: Deno.UnsafePointer.create(BigInt(key)) };
  }

  /** Forgets an inbox. Call only once HCS has stopped calling for it. */
  detach(key: number): void {
    if (this.#inboxes.delete(key)) this.#callback.unref();
  }

  /** How many inboxes are attached; for leak checks. */
  get attached(): number {
    return this.#inboxes.size;
  }
}

const dispatchers = new WeakMap<Vmcompute, NotificationDispatcher>();

/** The dispatcher of a loaded library, made on first use. */
export function dispatcherFor(lib: Vmcompute): NotificationDispatcher {
  let dispatcher = dispatchers.get(lib);
  if (!dispatcher) {
    dispatcher = new NotificationDispatcher();
    dispatchers.set(lib, dispatcher);
  }
  return dispatcher;
}
