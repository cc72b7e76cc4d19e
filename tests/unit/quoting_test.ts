import assert from "node:assert/strict";
import { shellCommand, shellQuote } from "../../console/quoting.ts";

Deno.test("shellQuote() makes every argument arrive unchanged in sh", async () => {
  const argv = [
    "plain",
    "with space",
    "it's",
    "$HOME",
    "a;b",
    "`id`",
    '"quoted"',
    "ünïcödé ✓",
    "",
    "tab\there",
    "back\\slash",
    "*",
    "new\nline",
  ];
  const script = `for a in ${argv.map(shellQuote).join(" ")}; do ` +
    `printf '%s\\0' "$a"; done`;
  const { stdout } = await new Deno.Command("sh", { args: ["-c", script] })
    .output();
  const received = new TextDecoder().decode(stdout).split("\0").slice(0, -1);
  assert.deepEqual(received, argv);
});

Deno.test("shellCommand() joins quoted arguments", () => {
  assert.equal(shellCommand(["ls", "-l", "a b"]), "'ls' '-l' 'a b'");
});
