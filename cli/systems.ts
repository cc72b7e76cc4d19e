/**
 * `vmrunner list` and `vmrunner kill`: vmrunner's compute systems as HCS
 * knows them, whichever process made them, as hcsdiag shows and kills them
 * but scoped to vmrunner's own by default.
 *
 * @module
 */

import { ComputeSystem, type HcsOptions } from "../hcs/compute_system.ts";
import { OWNER } from "../vm/machine.ts";
import { EXIT } from "./exit_codes.ts";
import * as log from "./log.ts";
import {
  type KillRequest,
  type ListRequest,
  type TimeoutSettings,
  UsageError,
} from "./options.ts";

/** vmrunner's systems (everyone's with --all) as a table: state and age. */
export async function list(
  request: ListRequest,
  timeouts: TimeoutSettings,
): Promise<string> {
  const options: HcsOptions = { timeouts: timeouts.hcs };
  const systems = await ComputeSystem.enumerate(
    request.all ? {} : { Owners: [OWNER] },
    options,
  );
  const rows = [["ID", "STATE", "OWNER", "AGE"]];
  for (const system of systems) {
    const age = formatAge(
      system.state === "Created" ? null : await uptimeMs(system.id, options),
    );
    rows.push([system.id, system.state, system.owner, age]);
  }
  const widths = rows[0].map((_, column) =>
    Math.max(...rows.map((row) => row[column].length))
  );
  const text = rows.map((row) =>
    row.map((cell, column) => cell.padEnd(widths[column])).join("  ").trimEnd()
  ).join("\n");
  return text + "\n";
}

/**
 * How long a system has run. Enumeration tells no time, so each system is
 * asked for its Statistics, as hcsshim does; `null` if it never started,
 * `undefined` when it does not say (it may have gone meanwhile).
 */
async function uptimeMs(
  id: string,
  options: HcsOptions,
): Promise<number | null | undefined> {
  try {
    const system = await ComputeSystem.open(id, options);
    let statistics: Record<string, unknown> | undefined;
    try {
      statistics = (await system.properties({
        PropertyTypes: ["Statistics"],
      })).Statistics as Record<string, unknown> | undefined;
    } finally {
      // Only closed: disposing would stop the VM.
      await system.close();
    }
    const uptime = statistics?.Uptime100ns;
    if (uptime === 0 && statistics?.ContainerStartTime === undefined) {
      return null;
    }
    if (typeof uptime === "number") return uptime / 10_000;
    const since = Date.parse(String(statistics?.ContainerStartTime));
    return Number.isNaN(since) ? undefined : Date.now() - since;
  } catch (error) {
    log.debug(`no age for ${id}: ${(error as Error).message}`);
    return undefined;
  }
}

/**
 * `45s`, `3m12s`, `2h05m`, `3d04h`; `-` for a system that never started
 * (`null`), `?` when unknown.
 */
export function formatAge(ms: number | null | undefined): string {
  if (ms === null) return "-";
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return "?";
  const seconds = Math.floor(ms / 1000);
  const two = (n: number) => String(n).padStart(2, "0");
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${two(seconds % 60)}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h${two(minutes % 60)}m`;
  return `${Math.floor(hours / 24)}d${two(hours % 24)}h`;
}

/** Terminates the systems named, or all of vmrunner's. */
export async function kill(
  request: KillRequest,
  timeouts: TimeoutSettings,
): Promise<number> {
  const options: HcsOptions = { timeouts: timeouts.hcs };
  const ids = request.all
    ? (await ComputeSystem.enumerate({ Owners: [OWNER] }, options)).map((s) =>
      s.id
    )
    : request.ids;
  let status = 0;
  for (const id of ids) {
    try {
      if (!request.all) await checkKillable(id, request.anyOwner, options);
      await using system = await ComputeSystem.open(id, options);
      await system.terminate();
      log.info(`killed ${id}`);
    } catch (error) {
      log.error(error instanceof Error ? error.message : String(error));
      status = error instanceof UsageError ? EXIT.USAGE : EXIT.HCS;
    }
  }
  return status;
}

/** Refuses an id that names no system, or another program's system. */
async function checkKillable(
  id: string,
  anyOwner: boolean,
  options: HcsOptions,
): Promise<void> {
  const [found] = await ComputeSystem.enumerate({ Ids: [id] }, options);
  if (!found) {
    throw new UsageError(
      `No compute system has the id "${id}"; vmrunner list shows vmrunner's ` +
        "VMs, vmrunner list --all everyone's",
    );
  }
  if (found.owner !== OWNER && !anyOwner) {
    throw new UsageError(
      `${id} belongs to "${found.owner}", not vmrunner; to end it anyway: ` +
        `vmrunner kill --any-owner ${id}`,
    );
  }
}
