import assert from "node:assert/strict";
import {
  decodeProcessInformation,
  readWideString,
  wideString,
} from "../../hcs/vmcompute_ffi.ts";

Deno.test("wideString() and readWideString() round-trip UTF-16", () => {
  for (const text of ["", "vm-1", "Zürich 🚀 世界", "\\\\.\\pipe\\x"]) {
    const buffer = wideString(text);
    assert.equal(buffer[buffer.length - 1], 0, "NUL-terminated");
    assert.equal(buffer.length, text.length + 1);
    assert.equal(readWideString(Deno.UnsafePointer.of(buffer)), text);
  }
  assert.equal(readWideString(null), "");
});

Deno.test("decodeProcessInformation() reads the x64 layout", () => {
  const buffer = new Uint8Array(32);
  const view = new DataView(buffer.buffer);
  view.setUint32(0, 42, true);
  view.setBigUint64(16, 0x1234n, true);
  const info = decodeProcessInformation(buffer);
  assert.equal(info.processId, 42);
  assert.equal(info.stdInput, null);
  assert.equal(Deno.UnsafePointer.value(info.stdOutput), 0x1234n);
  assert.equal(info.stdError, null);
});
