import assert from "node:assert/strict";
import { commandShape } from "../../console/command_shape.ts";
import { shellCommand } from "../../console/quoting.ts";

Deno.test("commandShape runs literal words as arguments, and a few builtins in place", () => {
  const cases: [string, string][] = [
    // Programs and their arguments, as typed or from an argument list.
    ["ls /", "words"],
    ["uname -a", "words"],
    [shellCommand(["cat", "/etc/os-release"]), "words"],
    [shellCommand(["printf", "%s\n", "it's"]), "words"],
    ["grep -c a=b,c:d@e%f+g /x/y.z", "words"],
    ["a\\ b 'c d'", "words"],
    // Builtins that cannot change the shell, however they are quoted.
    ["true", "builtin"],
    [shellCommand(["true"]), "builtin"],
    ["echo hello world", "builtin"],
    ["'[' -d /tmp ']'", "builtin"],
    ["test -t 0", "builtin"],
    ["pwd", "builtin"],
    [":", "builtin"],
    // Builtins that change the shell run in the subshell like programs.
    ["cd /tmp", "words"],
    ["exit 3", "words"],
    ["printf -v x y", "words"],
    // Reserved words and assignments are syntax unquoted, words quoted.
    ["if true", "syntax"],
    ["time ls", "syntax"],
    ["'if' true", "words"],
    ["x=1 env", "syntax"],
    ["'x=1' env", "syntax"],
    ["env x=1", "words"],
    // Expansions, globs, operators, comments and open quotes.
    ["echo $HOME", "syntax"],
    ["echo `id`", "syntax"],
    ["ls ~", "syntax"],
    ["ls *.txt", "syntax"],
    ["ls a?", "syntax"],
    ["[ -d /tmp ]", "syntax"],
    ["true; false", "syntax"],
    ["ls | wc", "syntax"],
    ["ls > x", "syntax"],
    ["sleep 1 &", "syntax"],
    ["(ls)", "syntax"],
    ["echo a # b", "syntax"],
    ['echo "a b"', "syntax"],
    ["echo 'open", "syntax"],
    ["echo a\\", "syntax"],
    ["echo {a,b}", "syntax"],
    ["! true", "syntax"],
    ["ls /tmp/café", "syntax"],
    ["", "syntax"],
    ["   ", "syntax"],
  ];
  for (const [command, shape] of cases) {
    assert.equal(commandShape(command), shape, command);
  }
});
