import { ShipshapeError } from "../errors.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { TerminalHub } from "../sessions/terminal-hub.ts";
import type { WorkshopStore } from "../store/workshop-store.ts";
import type { WorkshopViews } from "./workshop-views.ts";

/** A learner's open shell that an instructor may watch, read-only (the `/ws/watch` socket). */
export interface WatchTarget {
  hub: TerminalHub;
  sessionId: string;
  learner: string;
}

/**
 * Finds the shell to watch: the learner must belong to this live workshop and hold a seat, and the
 * shell must already be open (watching never starts one).
 */
export async function watchTarget(
  deps: { store: WorkshopStore; views: WorkshopViews; sessions: Pick<SessionManager, "current" | "openTerminal"> },
  id: string,
  memberId: string,
  terminal: string,
): Promise<WatchTarget> {
  const w = await deps.views.require(id);
  if (w.endedAt !== null) throw new ShipshapeError("sandbox_gone", "This workshop has ended; its sandboxes are gone.");
  const m = await deps.store.members.get(memberId);
  if (!m || m.workshopId !== id) throw new ShipshapeError("not_found", "There is no such learner in this workshop.");
  const view = m.status === "admitted" ? await deps.sessions.current(m.ownerId) : undefined;
  if (!view || view.workshopId !== id) throw new ShipshapeError("not_found", `${m.displayName} has no sandbox right now.`);
  const hub = deps.sessions.openTerminal(view.sessionId, terminal);
  if (!hub) throw new ShipshapeError("not_found", `${m.displayName} has no terminal called "${terminal}" open.`);
  return { hub, sessionId: view.sessionId, learner: m.displayName };
}
