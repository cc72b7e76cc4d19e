import assert from "node:assert/strict";
import {
  parseArgs,
  timeoutsFromEnv,
  timeoutVariableFor,
  UsageError,
} from "../../cli/options.ts";
import { formatAge } from "../../cli/systems.ts";
import { HcsError } from "../../hcs/hcs_error.ts";
import { HRESULT } from "../../hcs/hresult.ts";
import { Machine, MachineExitedError } from "../../vm/machine.ts";
import { checkWaitMs, MAX_WAIT_MS } from "../../hcs/timeouts.ts";

Deno.test("timeoutsFromEnv() reads VMRUNNER_TIMEOUT_* in seconds", () => {
  assert.deepEqual(timeoutsFromEnv({}), { hcs: {} });
  assert.deepEqual(
    timeoutsFromEnv({
      VMRUNNER_TIMEOUT_CREATE: "1",
      VMRUNNER_TIMEOUT_START: "2.5",
      VMRUNNER_TIMEOUT_SHUTDOWN: "3",
      VMRUNNER_TIMEOUT_TERMINATE: "4",
      VMRUNNER_TIMEOUT_CALL: "5",
      VMRUNNER_TIMEOUT_CONSOLE: "0.5",
      VMRUNNER_TIMEOUT_OTHER: "6",
    }),
    {
      hcs: {
        createMs: 1000,
        startMs: 2500,
        shutdownMs: 3000,
        terminateMs: 4000,
        callMs: 5000,
      },
      consoleMs: 500,
    },
  );
  // Set but empty counts as not set, as in a shell's `VAR= vmrunner`.
  assert.deepEqual(timeoutsFromEnv({ VMRUNNER_TIMEOUT_CREATE: "" }), {
    hcs: {},
  });
  for (const value of ["0", "-1", "soon", " ", "Infinity", "1e999"]) {
    assert.throws(
      () => timeoutsFromEnv({ VMRUNNER_TIMEOUT_START: value }),
      (error: unknown) =>
        error instanceof UsageError &&
        error.message ===
          `VMRUNNER_TIMEOUT_START must be a number of seconds above zero, not "${value}"`,
      value,
    );
  }
});

Deno.test("timeoutVariableFor() names the variable of each operation", () => {
  assert.equal(
    timeoutVariableFor("HcsCreateComputeSystem"),
    "VMRUNNER_TIMEOUT_CREATE",
  );
  assert.equal(
    timeoutVariableFor("HcsStartComputeSystem"),
    "VMRUNNER_TIMEOUT_START",
  );
  assert.equal(
    timeoutVariableFor("HcsShutdownComputeSystem"),
    "VMRUNNER_TIMEOUT_SHUTDOWN",
  );
  assert.equal(
    timeoutVariableFor("HcsTerminateComputeSystem"),
    "VMRUNNER_TIMEOUT_TERMINATE",
  );
  assert.equal(
    timeoutVariableFor("HcsOpenComputeSystem"),
    "VMRUNNER_TIMEOUT_CALL",
  );
});

Deno.test("parseArgs() reads kill's scope", () => {
  assert.deepEqual(parseArgs(["kill", "--any-owner", "x"]), {
    kind: "kill",
    ids: ["x"],
    all: false,
    anyOwner: true,
  });
  assert.deepEqual(parseArgs(["kill", "--all"]), {
    kind: "kill",
    ids: [],
    all: true,
    anyOwner: false,
  });
  assert.throws(
    () => parseArgs(["kill", "--all", "--any-owner"]),
    /kill --all ends only vmrunner's VMs/,
  );
});

Deno.test("formatAge() gives the largest two units", () => {
  const s = 1000, m = 60 * s, h = 60 * m, d = 24 * h;
  assert.equal(formatAge(0), "0s");
  assert.equal(formatAge(59_999), "59s");
  assert.equal(formatAge(3 * m + 7 * s), "3m07s");
  assert.equal(formatAge(2 * h + 5 * m + 59 * s), "2h05m");
  assert.equal(formatAge(3 * d + 4 * h), "3d04h");
  assert.equal(formatAge(null), "-");
  assert.equal(formatAge(undefined), "?");
  assert.equal(formatAge(-1), "?");
  assert.equal(formatAge(NaN), "?");
});

Deno.test("MachineExitedError tells how the VM ended", () => {
  const exit = (status: number, exitType?: string) => ({
    status,
    unexpected: status === HRESULT.UNEXPECTED_EXIT,
    data: exitType
      ? JSON.stringify({ Status: status, ExitType: exitType })
      : "",
  });
  assert.match(
    new MachineExitedError("vm1", undefined).message,
    /^Lost the connection to the Host Compute Service while using vm1; .*vmcompute service is running/,
  );
  assert.equal(
    new MachineExitedError("vm1", exit(HRESULT.UNEXPECTED_EXIT)).message,
    "The VM vm1 exited unexpectedly (0xC0370106); its last console lines " +
      "may say why",
  );
  assert.match(
    new MachineExitedError("vm1", exit(0, "ForcedExit")).message,
    /^The VM vm1 was terminated by another program \(such as vmrunner kill/,
  );
  assert.match(
    new MachineExitedError("vm1", exit(0, "GracefulExit")).message,
    /^The VM vm1 stopped: the guest powered off or rebooted\. .*--console-log FILE .*--memory/,
  );
  // Data HCS does not document may be anything.
  assert.equal(
    new MachineExitedError("vm1", { status: 0, unexpected: false, data: "{" })
      .message,
    new MachineExitedError("vm1", exit(0, "GracefulExit")).message,
  );
});

Deno.test("HcsError suggests --read-only for a disk in use, and patience for a timeout", () => {
  const shared = new HcsError({
    operation: "HcsStartComputeSystem",
    id: "vm1",
    hresult: HRESULT.SHARING_VIOLATION,
  });
  assert.match(shared.message, /The file is being used by another process/);
  assert.match(shared.hint!, /--read-only/);
  const late = new HcsError({
    operation: "HcsStartComputeSystem",
    id: "vm1",
    hresult: HRESULT.WAIT_TIMEOUT,
    detail: "HCS did not report SystemStartCompleted within 2 s",
  });
  assert.match(late.message, /within 2 s \(0x800705B4\)/);
  assert.match(late.hint!, /vmcompute service/);
});

Deno.test("Machine.boot refuses a wait no timer can count, before it makes anything", async () => {
  const tooLong = MAX_WAIT_MS + 1;
  for (
    const options of [
      { readyTimeoutMs: tooLong },
      { consoleTimeoutMs: -1 },
      { timeouts: { startMs: tooLong } },
      { timeouts: { callMs: Number.NaN } },
    ]
  ) {
    await assert.rejects(
      Machine.boot({ ...options, imageDir: "/nonexistent" }),
      (error: unknown) => {
        assert.ok(error instanceof RangeError, String(error));
        assert.match(error.message, /must be from 0 to 2147483647 ms/);
        return true;
      },
    );
  }
  assert.equal(checkWaitMs("x", MAX_WAIT_MS), MAX_WAIT_MS);
});
