import assert from "node:assert/strict";
import { HcsError, parseErrorEvents } from "../../hcs/hcs_error.ts";
import {
  formatHresult,
  HRESULT,
  hresultText,
  isAlreadyStopped,
  isNotFound,
  isPending,
  setSystemMessageLookup,
} from "../../hcs/hresult.ts";

Deno.test("HcsError carries the operation, id, HRESULT and events", () => {
  const error = new HcsError({
    operation: "HcsStartComputeSystem",
    id: "vm-1",
    hresult: 0xC0370106 | 0, // as an i32, the way FFI returns it
    events: [{ message: "The VM crashed", provider: "vmwp" }],
  });
  assert.equal(error.name, "HcsError");
  assert.equal(error.operation, "HcsStartComputeSystem");
  assert.equal(error.id, "vm-1");
  assert.equal(error.hresult, 0xC0370106);
  assert.equal(error.events.length, 1);
  assert.equal(
    error.message,
    'HcsStartComputeSystem failed for "vm-1": The compute system exited ' +
      "unexpectedly (0xC0370106)\n  HCS event: The VM crashed [vmwp]",
  );
});

Deno.test("HcsError suggests what to do for access denied and id in use", () => {
  const denied = new HcsError({
    operation: "HcsCreateComputeSystem",
    id: "a",
    hresult: HRESULT.E_ACCESSDENIED,
  });
  assert.match(denied.message, /Administrator/);
  assert.match(denied.message, /Hyper-V Administrators/);
  const exists = new HcsError({
    operation: "HcsCreateComputeSystem",
    id: "busy-vm",
    hresult: HRESULT.SYSTEM_ALREADY_EXISTS,
  });
  assert.match(exists.message, /vmrunner kill busy-vm/);
});

Deno.test("parseErrorEvents() reads events, falls back to ErrorMessage", () => {
  assert.deepEqual(
    parseErrorEvents(JSON.stringify({
      Error: -2143878899,
      ErrorEvents: [{
        Message: "missing field",
        Provider: "p",
        EventId: 7,
        Source: "s",
      }],
    })),
    [{ message: "missing field", provider: "p", eventId: 7, source: "s" }],
  );
  assert.deepEqual(
    parseErrorEvents('{"ErrorMessage":"bad"}'),
    [{ message: "bad" }],
  );
  assert.deepEqual(parseErrorEvents(""), []);
  assert.match(parseErrorEvents("not json")[0].message, /not json/);
});

Deno.test("hresultText() covers both HCS encodings and the system's table", () => {
  assert.equal(hresultText(0xC037010F), hresultText(0x8037010F));
  assert.match(hresultText(0xC037010F), /already exists/);
  setSystemMessageLookup((hr) =>
    hr === 0x80070002 ? "From the system." : undefined
  );
  try {
    assert.equal(hresultText(0x80070002), "From the system");
    assert.match(hresultText(0x80070005), /Access is denied/);
  } finally {
    setSystemMessageLookup(() => undefined);
  }
  assert.equal(hresultText(0x80041234), "Unknown error");
});

Deno.test("HRESULT predicates", () => {
  assert.equal(formatHresult(-1), "0xFFFFFFFF");
  assert.ok(isPending(0xC0370103 | 0));
  assert.ok(!isPending(0));
  assert.ok(isNotFound(0xC037010E) && isNotFound(0x8037010E));
  assert.ok(isAlreadyStopped(0xC0370110) && isAlreadyStopped(0x8037011F));
  assert.ok(!isAlreadyStopped(0xC0370106));
});
