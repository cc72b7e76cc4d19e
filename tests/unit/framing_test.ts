import assert from "node:assert/strict";
import {
  FrameScanner,
  KernelMessageFilter,
  printMarker,
} from "../../console/framing.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

/** Feeds `stream` to a scanner in pieces of `size` bytes. */
function scan(nonce: string, stream: Uint8Array, size: number) {
  const kernel = new KernelMessageFilter();
  const frame = new FrameScanner(nonce);
  const output: number[] = [];
  const kernelLines: string[] = [];
  const acks: number[] = [];
  let status: number | undefined;
  for (let i = 0; i < stream.length; i += size) {
    const { data, messages } = kernel.push(stream.subarray(i, i + size));
    kernelLines.push(...messages);
    for (const event of frame.push(data)) {
      if (event.kind === "output") output.push(...event.bytes);
      if (event.kind === "ack") acks.push(event.count);
      if (event.kind === "end") status = event.status;
    }
  }
  return { output: new Uint8Array(output), status, kernelLines, acks };
}

const SIZES = [1, 2, 3, 7, 64, 100_000];

Deno.test("FrameScanner passes output between the markers, whatever the chunking", () => {
  const stream = bytes(
    "echo noise\r\n$ @@vmr:abc:b@@\nhello\n@@vmr:abc:e:7@@\ntrailing",
  );
  for (const size of SIZES) {
    const { output, status } = scan("abc", stream, size);
    assert.equal(text(output), "hello\n", `chunk size ${size}`);
    assert.equal(status, 7);
  }
});

Deno.test("FrameScanner keeps marker-like text and another nonce's markers as output", () => {
  const inner = "@@vmr:zzz:e:0@@\n@@vmr:ab:e:1@@ @@vmr:abc:x@@ @@ @";
  const stream = bytes(`@@vmr:abc:b@@\n${inner}@@vmr:abc:e:0@@\n`);
  for (const size of SIZES) {
    const { output, status } = scan("abc", stream, size);
    assert.equal(text(output), inner, `chunk size ${size}`);
    assert.equal(status, 0);
  }
});

Deno.test("FrameScanner reads a multi-digit status split across chunks", () => {
  const stream = bytes("@@vmr:n:b@@\nx@@vmr:n:e:127@@\n");
  for (const size of SIZES) {
    assert.equal(scan("n", stream, size).status, 127);
  }
});

Deno.test("FrameScanner takes acknowledgements out of the output", () => {
  const stream = bytes(
    "@@vmr:n:a:8@@@@vmr:n:b@@\nab@@vmr:n:a:16@@cd@@vmr:n:e:0@@\n",
  );
  for (const size of SIZES) {
    const { output, acks } = scan("n", stream, size);
    assert.equal(text(output), "abcd");
    assert.deepEqual(acks, [8, 16]);
  }
});

Deno.test("FrameScanner passes binary output byte for byte", () => {
  const payload = new Uint8Array(256 * 4);
  for (let i = 0; i < payload.length; i++) payload[i] = i % 256;
  const stream = new Uint8Array([
    ...bytes("@@vmr:n:b@@\n"),
    ...payload,
    ...bytes("@@vmr:n:e:0@@\n"),
  ]);
  for (const size of SIZES) {
    assert.deepEqual(scan("n", stream, size).output, payload);
  }
});

Deno.test("KernelMessageFilter removes kernel lines, also inside a marker", () => {
  const kernelLine = "[   31.811978] WARNING: CPU: 0 PID: 1 at x\r\n";
  const stream = bytes(
    `@@vmr:n:b@@\nout${kernelLine}put\n@@vmr:n:${kernelLine}e:3@@\n`,
  );
  for (const size of SIZES) {
    const { output, status, kernelLines } = scan("n", stream, size);
    assert.equal(text(output), "output\n", `chunk size ${size}`);
    assert.equal(status, 3);
    assert.equal(kernelLines.length, 2);
    assert.match(kernelLines[0], /^\[ {3}31\.811978\] WARNING/);
  }
});

Deno.test("KernelMessageFilter leaves timestamp-like output with a bare newline alone", () => {
  // dmesg output through a terminal that does not add CRs.
  const dmesg = "[    0.000000] Linux version 6.1\n[ 1.5] not a stamp\r\n";
  const stream = bytes(`@@vmr:n:b@@\n${dmesg}@@vmr:n:e:0@@\n`);
  for (const size of SIZES) {
    const { output, kernelLines } = scan("n", stream, size);
    assert.equal(text(output), dmesg);
    assert.deepEqual(kernelLines, []);
  }
});

Deno.test("printMarker's shell text does not contain the marker itself", () => {
  const line = printMarker("abc", "e", '"$?"');
  assert.ok(!line.includes("@@vmr:abc"));
  assert.equal(line, `printf '\\100\\100vmr:%s:e:%s\\100\\100\\n' abc "$?"`);
});

Deno.test("KernelMessageFilter keeps timestamp-like output glued to a kernel line", () => {
  const kernelLine = "[    3.727857] stress 196\r\n";
  const user = "00301[301.123456]@\n";
  const stream = bytes(
    `@@vmr:n:b@@\n${user.slice(0, 18)}${kernelLine}${
      user.slice(18)
    }@@vmr:n:e:0@@\n`,
  );
  for (const size of SIZES) {
    const { output, kernelLines } = scan("n", stream, size);
    assert.equal(text(output), user, `chunk size ${size}`);
    assert.equal(kernelLines.length, 1);
  }
});
