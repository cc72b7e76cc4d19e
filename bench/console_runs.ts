/**
 * Rows 2 and 3: commands on a running VM through the library, against raw
 * writes and reads on the same console.
 *
 * One VM serves both. Its console is a socket that takes one client at a
 * time, so the two take turns in blocks: a block of library runs on a
 * Machine, then the Machine lets go of the console and a block of raw runs
 * follows on a connection of its own, and so on. Alternating cancels most
 * of the drift that other VMs on the machine cause.
 *
 * @module
 */

import { ConsoleChannel } from "../console/channel.ts";
import { connectConsole } from "../console/connect.ts";
import { consolePipeName } from "../console/pipe_name.ts";
import type { ComputeSystem } from "../hcs/compute_system.ts";
import { Machine, type MachineOptions } from "../vm/machine.ts";
import {
  connectRaw,
  consoleSocketPath,
  type RawConsole,
} from "./raw_console.ts";
import { median } from "./stats.ts";

/** Where the guest keeps the payload (a tmpfs on a read-only root). */
const BLOB = "/tmp/vmrbench.blob";
/** What the raw side prints after the payload, to see its end. */
const RAW_END = "vmrbench-end";
/** Lines of the payload: text, like most command output. */
const PAYLOAD_LINE =
  "vmrunner bench payload 0123456789 abcdefghijklmnopqrstuvwxyz";

/** Options of {@linkcode measureConsole}. */
export interface ConsoleOptions {
  /** Folder with vmlinuz, initrd and rootfs.vhdx. */
  imageDir: string;
  /** Library blocks, each followed by a raw block. */
  blocks: number;
  /** Round trips per block. */
  roundTrips: number;
  /** Bytes the guest sends in each throughput run (one per block). */
  payloadBytes: number;
  /** Progress notes. */
  log?: (message: string) => void;
}

/** The measurements of one block pair. */
export interface ConsoleBlock {
  /** `Machine.run(["true"])`, ms each. */
  libraryRoundTripMs: number[];
  /** `echo x` written and its reply read on the raw socket, ms each. */
  rawRoundTripMs: number[];
  /** The payload through `Machine.run(["cat", ...])`, bytes per second. */
  libraryBytesPerSecond: number;
  /** The same `cat` read from the raw socket, bytes per second. */
  rawBytesPerSecond: number;
}

/** Boots one VM and measures `blocks` library blocks and raw blocks. */
export async function measureConsole(
  options: ConsoleOptions,
): Promise<ConsoleBlock[]> {
  const { payloadBytes } = options;
  const id = `vmrbench-${crypto.randomUUID().slice(0, 8)}`;
  const booted = await Machine.boot({
    id,
    imageDir: options.imageDir,
    readOnly: true,
  });
  let machine = booted;
  const blocks: ConsoleBlock[] = [];
  try {
    // The first run reaches the shell and tries HcsCreateProcess once.
    await check(machine.run(["true"]), "the first command");
    await check(
      machine.run(
        `yes '${PAYLOAD_LINE}' | head -c ${payloadBytes} > ${BLOB}`,
      ),
      "making the payload",
    );
    for (let block = 0; block < options.blocks; block++) {
      if (block > 0) {
        machine = await reconnect(booted.system);
        // Sets the shell up again; not measured.
        await check(machine.run(["true"]), "the first command");
      }
      const libraryRoundTripMs: number[] = [];
      for (let i = 0; i < options.roundTrips; i++) {
        const started = performance.now();
        await check(machine.run(["true"]), "true");
        libraryRoundTripMs.push(performance.now() - started);
      }
      const started = performance.now();
      const { output } = await check(
        machine.run(["cat", BLOB]),
        "cat of the payload",
      );
      const libraryBytesPerSecond = output.length /
        ((performance.now() - started) / 1000);
      if (output.length !== payloadBytes) {
        throw new Error(
          `The library received ${output.length} bytes of ${payloadBytes}`,
        );
      }
      await machine.console.close();

      const raw = await connectRaw(consoleSocketPath(id));
      try {
        await rawRoundTrip(raw); // the first after connecting; not measured
        const rawRoundTripMs: number[] = [];
        for (let i = 0; i < options.roundTrips; i++) {
          rawRoundTripMs.push(await rawRoundTrip(raw));
        }
        const rawBytesPerSecond = await rawTransfer(raw, payloadBytes);
        // Back to the interactive shell, so that the next Machine finds
        // the console as a fresh boot leaves it.
        await raw.write("exit\n");
        blocks.push({
          libraryRoundTripMs,
          rawRoundTripMs,
          libraryBytesPerSecond,
          rawBytesPerSecond,
        });
      } finally {
        await raw.close();
      }
      options.log?.(
        `console block ${block + 1}/${options.blocks}: ` +
          `round trip ${median(libraryRoundTripMs).toFixed(2)} ms ` +
          `vs raw ${
            median(blocks[blocks.length - 1].rawRoundTripMs).toFixed(2)
          } ms, throughput ${(libraryBytesPerSecond / 1e6).toFixed(3)} ` +
          `vs raw ${
            (blocks[blocks.length - 1].rawBytesPerSecond / 1e6)
              .toFixed(3)
          } MB/s`,
      );
    }
  } finally {
    if (machine !== booted) await machine.console.close().catch(() => {});
    await booted.dispose();
  }
  return blocks;
}

/**
 * A new Machine on a new connection to the console of `system`'s VM.
 * Machine has no public way to take a console back once it has let it go,
 * and the bench needs one to alternate on the same console. Its constructor
 * is private to TypeScript only; the smoke test notices if it changes.
 */
async function reconnect(system: ComputeSystem): Promise<Machine> {
  const transport = await connectConsole(consolePipeName(system.id));
  const channel = new ConsoleChannel(transport);
  const MachineOn = Machine as unknown as new (
    system: ComputeSystem,
    channel: ConsoleChannel,
    options: MachineOptions,
  ) => Machine;
  return new MachineOn(system, channel, { consoleOnly: true });
}

/** `echo x` and its reply, timed from before the write. */
async function rawRoundTrip(raw: RawConsole): Promise<number> {
  const reply = raw.until("x\n");
  const started = performance.now();
  await raw.write("echo x\n");
  await reply;
  return performance.now() - started;
}

/** The payload `cat` on the raw socket; bytes per second. */
async function rawTransfer(
  raw: RawConsole,
  payloadBytes: number,
): Promise<number> {
  const end = raw.until(`${RAW_END}\n`);
  const started = performance.now();
  await raw.write(`cat ${BLOB}; echo ${RAW_END}\n`);
  const received = await end - RAW_END.length - 1;
  const seconds = (performance.now() - started) / 1000;
  if (received !== payloadBytes) {
    throw new Error(`The raw side received ${received} of ${payloadBytes}`);
  }
  return received / seconds;
}

async function check<T extends { status: number }>(
  run: Promise<T>,
  what: string,
): Promise<T> {
  const result = await run;
  if (result.status !== 0) {
    throw new Error(`${what} failed in the guest (status ${result.status})`);
  }
  return result;
}
