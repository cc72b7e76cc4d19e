/**
 * vmrunner's own exit statuses. A command that ran in the guest exits with
 * the guest command's status instead; these values are chosen where a
 * command's own statuses rarely are, as container runners do.
 *
 * @module
 */

/** Exit statuses of vmrunner itself. */
export const EXIT = {
  /** The command line or its input was wrong; nothing was started. */
  USAGE: 2,
  /** The guest command ran longer than --timeout and was interrupted. */
  TIMEOUT: 124,
  /** The Host Compute Service failed, or the VM died. */
  HCS: 125,
  /** The console failed: no shell, or it closed. */
  CONSOLE: 126,
  /** Whoever read our output stopped reading (a closed pipe). */
  BROKEN_PIPE: 141,
  /** Interrupted by Ctrl+C (SIGINT, or Ctrl+Break on Windows). */
  INTERRUPTED: 130,
  /** Stopped by SIGTERM or SIGHUP, or the console window closing. */
  TERMINATED: 143,
  /** Anything else: a bug; the message says what happened. */
  INTERNAL: 1,
} as const;

/** The `--help` section listing them. */
export const EXIT_HELP = `
Exit status:
  the guest command's own status, when it ran
  ${EXIT.USAGE}    bad command line or input (nothing was started)
  ${EXIT.TIMEOUT}  the guest command exceeded --timeout
  ${EXIT.HCS}  the Host Compute Service failed, or the VM died
  ${EXIT.CONSOLE}  no usable shell on the VM's console
  ${EXIT.BROKEN_PIPE}  the reader of vmrunner's output went away
  ${EXIT.INTERRUPTED}  interrupted (Ctrl+C, Ctrl+Break)
  ${EXIT.TERMINATED}  terminated (SIGTERM, SIGHUP, console window closed)
  ${EXIT.INTERNAL}    unexpected internal error, or output that cannot be written`;
