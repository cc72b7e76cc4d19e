import assert from "node:assert/strict";
import { BatchingWriter } from "../../cli/batching_writer.ts";

/** A stream whose writes each wait for the test to let them finish. */
function slowSink() {
  const writes: Uint8Array[] = [];
  let release: (() => void) | undefined;
  const stream = new WritableStream<Uint8Array>({
    write(chunk) {
      writes.push(chunk);
      return new Promise<void>((resolve) => (release = resolve));
    },
  });
  const tick = () => new Promise((resolve) => setTimeout(resolve, 1));
  /** Finishes the write under way. */
  const next = async () => {
    while (!release) await tick();
    const finish = release;
    release = undefined;
    finish();
  };
  /** Waits until `count` writes have begun. */
  const begun = async (count: number) => {
    while (writes.length < count) await tick();
  };
  return { writer: stream.getWriter(), writes, next, begun };
}

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (chunks: Uint8Array[]) =>
  chunks.map((chunk) => new TextDecoder().decode(chunk)).join("");

Deno.test("BatchingWriter joins what arrives during a write, in order", async () => {
  const sink = slowSink();
  const output = new BatchingWriter(sink.writer);
  output.write(bytes("a"));
  for (const piece of ["b", "c", "d"]) output.write(bytes(piece));
  const drained = output.drained();
  await sink.next();
  await sink.begun(2);
  output.write(bytes("e"));
  await sink.next();
  await sink.begun(3);
  await sink.next();
  await drained;
  assert.equal(text(sink.writes), "abcde");
  // One write for "a", one for what came while it was written, one after.
  assert.deepEqual(sink.writes.map((chunk) => chunk.length), [1, 3, 1]);
  assert.equal(output.error, undefined);
});

Deno.test("BatchingWriter grows past its buffer and keeps every byte", async () => {
  const sink = slowSink();
  const output = new BatchingWriter(sink.writer);
  output.write(bytes("<"));
  const big = new Uint8Array(100_000).fill(120);
  output.write(big);
  output.write(big);
  output.write(bytes(">"));
  const drained = output.drained();
  await sink.next();
  await sink.begun(2);
  await sink.next();
  await drained;
  const all = text(sink.writes);
  assert.equal(all.length, 200_002);
  assert.ok(all.startsWith("<x") && all.endsWith("x>"));
});

Deno.test("BatchingWriter reports the first failure once and drops the rest", async () => {
  const failures: unknown[] = [];
  const broken = new Deno.errors.BrokenPipe("gone");
  const stream = new WritableStream<Uint8Array>({
    write() {
      throw broken;
    },
  });
  const output = new BatchingWriter(
    stream.getWriter(),
    (error) => failures.push(error),
  );
  output.write(bytes("x"));
  await output.drained();
  output.write(bytes("y"));
  await output.drained();
  assert.equal(output.error, broken);
  assert.deepEqual(failures, [broken]);
});
