import assert from "node:assert/strict";
import { runsInPlace } from "../../console/in_place.ts";
import { shellCommand } from "../../console/quoting.ts";

Deno.test("runsInPlace takes a few builtins with literal words, and nothing else", () => {
  const inPlace = [
    "true",
    shellCommand(["true"]),
    ":",
    "false",
    "pwd",
    "echo hello world",
    shellCommand(["echo", "-n", "it's", "", "a b", "é"]),
    "echo a\\ b 'c d' x=1 a,b:c@d%e+f/g.h-i",
  ];
  for (const command of inPlace) assert.ok(runsInPlace(command), command);
  const notInPlace = [
    // Programs, and builtins that change the shell or look at it.
    "ls /",
    shellCommand(["cat", "/etc/os-release"]),
    "cd /tmp",
    "exit 3",
    "test -t 0",
    "'[' -d /tmp ']'",
    "printf -v x y",
    "eval true",
    // Expansions, globs, operators, comments and open quotes.
    "echo $HOME",
    "echo `id`",
    "echo ~",
    "echo *.txt",
    "echo a?",
    "echo [ab]",
    "true; false",
    "true | true",
    "echo > x",
    "true &",
    "(true)",
    "echo a # b",
    'echo "a b"',
    "echo 'open",
    "echo a\\",
    "echo a\\\nb",
    "echo {a,b}",
    "! true",
    "echo café",
    "x=1 true",
    "",
    "   ",
  ];
  for (const command of notInPlace) {
    assert.ok(!runsInPlace(command), command);
  }
});
