/**
 * How long vmrunner waits for each HCS operation. A wait that runs out is
 * an error like any other HCS failure; the operation itself may still be
 * running in the service, which is why teardown escalates to terminate.
 *
 * @module
 */

/** Milliseconds to wait for each kind of operation. */
export interface HcsTimeouts {
  /** HcsCreateComputeSystem and its completion. */
  createMs: number;
  /** HcsStartComputeSystem and its completion. */
  startMs: number;
  /** A graceful shutdown, until the system has exited. */
  shutdownMs: number;
  /** A forced termination, until the system has exited. */
  terminateMs: number;
  /** Any other call, which HCS answers without a notification. */
  callMs: number;
}

/** The defaults: generous, since HCS is slow on a busy host. */
export const DEFAULT_TIMEOUTS: Readonly<HcsTimeouts> = Object.freeze({
  createMs: 60_000,
  startMs: 120_000,
  shutdownMs: 30_000,
  terminateMs: 10_000,
  callMs: 60_000,
});

/**
 * The longest wait a JavaScript timer can count, 2^31 - 1 ms (24.8 days):
 * a longer one fires at once.
 */
export const MAX_WAIT_MS = 2 ** 31 - 1;

/**
 * Returns `ms` if a timer can wait that long.
 *
 * @throws {RangeError} naming `what` when `ms` is below zero, not a
 * number, or longer than {@linkcode MAX_WAIT_MS}.
 */
export function checkWaitMs(what: string, ms: number): number {
  if (!(ms >= 0 && ms <= MAX_WAIT_MS)) {
    throw new RangeError(
      `${what} must be from 0 to ${MAX_WAIT_MS} ms (24 days), not ${ms}`,
    );
  }
  return ms;
}

/** The defaults with `overrides`, each checked with {@linkcode checkWaitMs}. */
export function hcsTimeouts(overrides: Partial<HcsTimeouts> = {}): HcsTimeouts {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...overrides };
  for (const [key, ms] of Object.entries(timeouts)) {
    checkWaitMs(`timeouts.${key}`, ms);
  }
  return timeouts;
}
