import assert from "node:assert/strict";
import { dirname, isAbsolute, join, resolve } from "../../vm/paths.ts";

Deno.test("POSIX paths: absolute, resolved, joined, parent", () => {
  assert.equal(isAbsolute("/x", false), true);
  assert.equal(isAbsolute("x/y", false), false);
  assert.equal(isAbsolute("C:\\x", false), false);
  assert.equal(resolve("vm-image", "/work/p", false), "/work/p/vm-image");
  assert.equal(resolve("./a/../b/", "/w", false), "/w/b");
  assert.equal(resolve("/a//b/./c", "/w", false), "/a/b/c");
  assert.equal(resolve("../../../x", "/w", false), "/x");
  assert.equal(join("/a/", "vmlinuz", false), "/a/vmlinuz");
  assert.equal(dirname("/usr/bin/deno", false), "/usr/bin");
  assert.equal(dirname("/deno", false), "/");
  assert.equal(dirname("deno", false), ".");
});

Deno.test("Windows paths: drives, UNC shares, either slash", () => {
  assert.equal(isAbsolute("C:\\x", true), true);
  assert.equal(isAbsolute("c:/x", true), true);
  assert.equal(isAbsolute("\\\\srv\\share\\x", true), true);
  assert.equal(isAbsolute("\\x", true), false);
  assert.equal(isAbsolute("C:x", true), false);
  assert.equal(isAbsolute("x", true), false);
  const cwd = "C:\\Users\\me";
  assert.equal(resolve("vm-image", cwd, true), "C:\\Users\\me\\vm-image");
  assert.equal(resolve("a/../b\\c", cwd, true), "C:\\Users\\me\\b\\c");
  assert.equal(resolve("D:/img/./k", cwd, true), "D:\\img\\k");
  assert.equal(resolve("\\img", cwd, true), "C:\\img");
  assert.equal(resolve("c:img", cwd, true), "C:\\Users\\me\\img");
  assert.equal(resolve("D:img", cwd, true), "D:\\img");
  assert.equal(resolve("..\\..\\..\\x", cwd, true), "C:\\x");
  assert.equal(
    resolve("\\\\srv\\share\\a\\..\\b", cwd, true),
    "\\\\srv\\share\\b",
  );
  assert.equal(join("C:\\img\\", "initrd", true), "C:\\img\\initrd");
  assert.equal(join("C:\\img", "initrd", true), "C:\\img\\initrd");
  assert.equal(dirname("C:\\tools\\vmrunner.exe", true), "C:\\tools");
  assert.equal(dirname("C:\\vmrunner.exe", true), "C:\\");
  assert.equal(
    dirname("\\\\srv\\share\\vmrunner.exe", true),
    "\\\\srv\\share\\",
  );
});
