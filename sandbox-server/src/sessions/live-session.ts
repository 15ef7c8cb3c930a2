import type { StartProgress } from "../runtime/types.ts";
import type { SessionRecord } from "../store/store.ts";
import type { SandboxState } from "../../../contracts/session-api.ts";
import type { TerminalHub } from "./terminal-hub.ts";

/**
 * Live, in-memory side of a session: the sandbox start and the terminals attached to it. The
 * session manager owns the map of them; the reaper, the limit watchdog and the shell registry
 * read and act on the entries it hands them.
 */
export interface LiveSession {
  record: SessionRecord;
  ready: Promise<string>;
  status: SandboxState;
  progressListeners: Set<(p: StartProgress) => void>;
  hubs: Map<string, TerminalHub>;
  lastActiveAt: number;
  /** When each kind of limit notice was last sent, so a learner is told once a minute at most. */
  noticesSent: Map<string, number>;
  /** Found running when this server started: its shells are old ones, waiting silently in dtach. */
  reattached: boolean;
}

/** A browser watches this session's terminal right now. */
export function isAttached(live: LiveSession): boolean {
  return [...live.hubs.values()].some((h) => h.clientCount > 0);
}

/** Ends a session by id, saying why (SessionManager.end). */
export type EndSession = (sessionId: string, reason: string) => Promise<void>;
