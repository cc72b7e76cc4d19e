import assert from "node:assert/strict";
import { systemMessage } from "../../win32/kernel32_ffi.ts";
import { hresultText, setSystemMessageLookup } from "../../hcs/hresult.ts";

const notWindows = Deno.build.os !== "windows";

Deno.test({
  name: "systemMessage() reads the system's text for a code [windows only]",
  ignore: notWindows,
  fn() {
    // Wording differs between Windows and Wine; the subject does not.
    assert.match(systemMessage(0x80070005) ?? "", /access/i);
    assert.match(systemMessage(5) ?? "", /access/i);
    assert.match(systemMessage(0x80070002) ?? "", /file/i);
    assert.equal(systemMessage(0x8004DEAD), undefined);
  },
});

Deno.test({
  name: "hresultText() takes non-HCS codes from FormatMessageW [windows only]",
  ignore: notWindows,
  fn() {
    const fromSystem = systemMessage(0x80070020)!.replace(/\.$/, "");
    assert.equal(
      hresultText(0x80070020),
      "The file is being used by another process",
    );
    setSystemMessageLookup(systemMessage);
    try {
      assert.equal(hresultText(0x80070020), fromSystem);
      // HCS's own codes keep our table's words on every system.
      assert.match(hresultText(0xC037010F), /already exists/);
    } finally {
      setSystemMessageLookup(() => undefined);
    }
  },
});
