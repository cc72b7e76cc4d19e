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
