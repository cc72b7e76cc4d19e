/**
 * The one error type for failures reported by the Host Compute Service.
 *
 * @module
 */

import {
  formatHresult,
  hresultHint,
  hresultText,
  unsigned,
} from "./hresult.ts";

/** One entry of a result document's `ErrorEvents`. */
export interface HcsErrorEvent {
  /** What went wrong, in HCS's words. */
  message: string;
  /** The component that reported it. */
  provider?: string;
  /** The event's numeric id. */
  eventId?: number;
  /** Where in HCS it was raised. */
  source?: string;
}

/** What {@linkcode HcsError} is made from. */
export interface HcsErrorInit {
  /** The export that failed, e.g. `HcsStartComputeSystem`. */
  operation: string;
  /** The compute system's id, when the call concerned one. */
  id?: string;
  /** The HRESULT, from the call or from its completion notification. */
  hresult: number;
  /** HCS's error events, from the result document. */
  events?: HcsErrorEvent[];
  /** What happened, where the HRESULT's own text says too little. */
  detail?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A failure of an HCS call: which call, for which compute system, the
 * HRESULT and its meaning, HCS's error events, and what to try.
 */
export class HcsError extends Error {
  /** Always `"HcsError"`. */
  override name = "HcsError";
  /** The export that failed, e.g. `HcsStartComputeSystem`. */
  readonly operation: string;
  /** The compute system's id, if the call concerned one. */
  readonly id: string | undefined;
  /** The HRESULT as an unsigned 32-bit number. */
  readonly hresult: number;
  /** HCS's error events, possibly empty. */
  readonly events: readonly HcsErrorEvent[];
  /** A suggestion for the user, if there is one. */
  readonly hint: string | undefined;

  /** Builds the error and its message from what HCS reported. */
  constructor(init: HcsErrorInit) {
    const hint = hresultHint(init.hresult, init.id);
    super(formatMessage(init, hint), { cause: init.cause });
    this.operation = init.operation;
    this.id = init.id;
    this.hresult = unsigned(init.hresult);
    this.events = init.events ?? [];
    this.hint = hint;
  }
}

function formatMessage(init: HcsErrorInit, hint: string | undefined) {
  const target = init.id === undefined ? "" : ` for "${init.id}"`;
  const what = init.detail ?? hresultText(init.hresult);
  const lines = [
    `${init.operation} failed${target}: ${what} (${
      formatHresult(init.hresult)
    })`,
  ];
  for (const event of init.events ?? []) {
    const from = [event.provider, event.source].filter(Boolean).join(", ");
    lines.push(`  HCS event: ${event.message}${from ? ` [${from}]` : ""}`);
  }
  if (hint) lines.push(`  Try: ${hint}`);
  return lines.join("\n");
}

/**
 * Reads the `ErrorEvents` of a result document. A document that does not
 * parse yields no events rather than hiding the HRESULT behind a parse
 * error.
 */
export function parseErrorEvents(resultDocument: string): HcsErrorEvent[] {
  if (resultDocument.trim() === "") return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(resultDocument);
  } catch {
    return [{ message: `unparsed result document: ${resultDocument}` }];
  }
  const events = (parsed as { ErrorEvents?: unknown })?.ErrorEvents;
  const list: HcsErrorEvent[] = [];
  if (Array.isArray(events)) {
    for (const event of events) {
      if (typeof event !== "object" || event === null) continue;
      const { Message, Provider, EventId, Source } = event as Record<
        string,
        unknown
      >;
      list.push({
        message: typeof Message === "string" ? Message : JSON.stringify(event),
        provider: typeof Provider === "string" ? Provider : undefined,
        eventId: typeof EventId === "number" ? EventId : undefined,
        source: typeof Source === "string" ? Source : undefined,
      });
    }
  }
  const message = (parsed as { ErrorMessage?: unknown })?.ErrorMessage;
  if (list.length === 0 && typeof message === "string" && message !== "") {
    list.push({ message });
  }
  return list;
}
