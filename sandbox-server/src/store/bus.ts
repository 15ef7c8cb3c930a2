import { EventEmitter } from "node:events";

/**
 * What one server tells the others (and itself) so that live views follow changes made anywhere:
 * - `workshop`: something a workshop's dashboard shows changed (a verdict, the roster, a message);
 * - `notice`: a message for the terminals of some sessions, wherever they are attached;
 * - `resync`: notifications may have been missed (the bus reconnected): look at everything again.
 */
export type BusEvent =
  | { type: "workshop"; workshopId: string }
  | { type: "notice"; sessionIds: string[]; code: string; message: string }
  | { type: "resync" };

/**
 * Live updates between servers without a broker: Postgres LISTEN/NOTIFY when servers share a
 * database (postgres-store.ts), an in-process emitter for the single SQLite server. Delivery is
 * at most once and best effort; every consumer can rebuild its view from the store (`resync`).
 */
export interface EventBus {
  publish(event: BusEvent): void;
  subscribe(listener: (event: BusEvent) => void): () => void;
}

/** The single server's bus: delivered in this process, after the publisher's turn of the event loop. */
export class LocalBus implements EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  publish(event: BusEvent): void {
    setImmediate(() => this.emitter.emit("event", event));
  }

  subscribe(listener: (event: BusEvent) => void): () => void {
    this.emitter.on("event", listener);
    return () => this.emitter.off("event", listener);
  }
}

/** Parses a notification's payload; anything else on the channel is ignored. */
export function parseBusEvent(payload: string | undefined): BusEvent | undefined {
  if (!payload) return undefined;
  try {
    const e = JSON.parse(payload) as Partial<BusEvent> & Record<string, unknown>;
    if (e.type === "workshop" && typeof e.workshopId === "string") return { type: "workshop", workshopId: e.workshopId };
    if (e.type === "resync") return { type: "resync" };
    if (e.type === "notice" && Array.isArray(e.sessionIds) && typeof e.code === "string" && typeof e.message === "string") {
      return { type: "notice", sessionIds: e.sessionIds.map(String), code: e.code, message: e.message };
    }
  } catch {
    // Not ours.
  }
  return undefined;
}
