/**
 * Reads a trace file the simulator wrote ($HCS_SIM_TRACE) and tells what
 * the processes that used it left behind: handles not closed, callbacks not
 * unregistered, result strings not freed. For tests that run vmrunner as a
 * separate process and check afterwards that nothing leaked.
 *
 * ```ts
 * const summary = await summarizeTrace("/tmp/run.jsonl");
 * assert.deepEqual(summary.leaks, []);
 * ```
 *
 * @module
 */

/** One traced API call. */
export interface TraceCall {
  t: number;
  pid: number;
  tid: number;
  call: string;
  args: Record<string, unknown>;
  out?: Record<string, unknown>;
  result?: string | null;
  message?: string;
  /** The HRESULT as "0x%08X". */
  hr: string;
}

/** What a trace shows, over every process that wrote to it. */
export interface TraceSummary {
  calls: TraceCall[];
  systemHandlesOpened: number;
  systemHandlesClosed: number;
  processHandlesOpened: number;
  processHandlesClosed: number;
  callbacksRegistered: number;
  callbacksUnregistered: number;
  resultsAllocated: number;
  resultsFreed: number;
  badFrees: number;
  notifications: number;
  /** One line per thing left open, e.g. "pid 12: system handle 0x55d0…". */
  leaks: string[];
}

// Which event opens what, and which event closes it again.
const PAIRS = {
  open_system: ["close_system", "system handle", "handle"],
  open_process: ["close_process", "process handle", "handle"],
  register: ["unregister", "callback", "callback"],
  alloc: ["free", "result string", "ptr"],
} as const;

export async function summarizeTrace(path: string): Promise<TraceSummary> {
  const text = await Deno.readTextFile(path);
  const summary: TraceSummary = {
    calls: [],
    systemHandlesOpened: 0,
    systemHandlesClosed: 0,
    processHandlesOpened: 0,
    processHandlesClosed: 0,
    callbacksRegistered: 0,
    callbacksUnregistered: 0,
    resultsAllocated: 0,
    resultsFreed: 0,
    badFrees: 0,
    notifications: 0,
    leaks: [],
  };
  const counts: Record<string, keyof TraceSummary> = {
    open_system: "systemHandlesOpened",
    close_system: "systemHandlesClosed",
    open_process: "processHandlesOpened",
    close_process: "processHandlesClosed",
    register: "callbacksRegistered",
    unregister: "callbacksUnregistered",
    alloc: "resultsAllocated",
    free: "resultsFreed",
    bad_free: "badFrees",
    notify: "notifications",
  };
  // "pid:kind:pointer" -> description, for everything opened and not closed
  const open = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const entry = JSON.parse(line);
    if (entry.call) {
      summary.calls.push(entry);
      continue;
    }
    const counter = counts[entry.event];
    if (counter) (summary[counter] as number)++;
    for (const [opener, [closer, what, key]] of Object.entries(PAIRS)) {
      const id = `${entry.pid}:${what}:${entry[key]}`;
      if (entry.event === opener) {
        open.set(id, `pid ${entry.pid}: ${what} ${entry[key]}`);
      }
      if (entry.event === closer) open.delete(id);
    }
  }
  summary.leaks = [...open.values()];
  return summary;
}
