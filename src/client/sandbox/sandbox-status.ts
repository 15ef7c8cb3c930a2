/**
 * What the page says about the learner's sandbox. Every terminal reports its own connection
 * state; the page shows one status, the most important of them (an expired sandbox outranks a
 * reconnecting socket, which outranks a ready one).
 */
export type SandboxStatus =
  | { state: "idle" }
  | { state: "connecting" }
  | { state: "starting"; step: string; progress: number }
  | { state: "ready" }
  | { state: "reconnecting"; message?: string }
  /** Retryable by the learner: the session could not be created (server down, limit reached). */
  | { state: "failed"; message: string }
  /** Final: the sandbox is gone or not ours; only a new sandbox helps. */
  | { state: "expired"; message: string; code: number };

export type SandboxState = SandboxStatus["state"];

const rank: Record<SandboxState, number> = {
  idle: 0,
  ready: 1,
  connecting: 2,
  reconnecting: 3,
  starting: 4,
  failed: 5,
  expired: 6,
};

/** The status the page shows for a set of per-terminal statuses. */
export function combineStatuses(statuses: Iterable<SandboxStatus>): SandboxStatus {
  let shown: SandboxStatus = { state: "idle" };
  for (const status of statuses) {
    if (rank[status.state] > rank[shown.state]) shown = status;
    // Several terminals starting: show the one furthest along, it is the truest picture.
    else if (status.state === "starting" && shown.state === "starting" && status.progress > shown.progress) shown = status;
  }
  return shown;
}

export function describeStatus(status: SandboxStatus): string {
  switch (status.state) {
    case "idle":
      return "Sandbox not started";
    case "connecting":
      return "Connecting to your sandbox…";
    case "starting":
      return status.progress >= 1 ? "Sandbox started; opening the shell…" : `Starting your sandbox: ${status.step}`;
    case "ready":
      return "Sandbox ready";
    case "reconnecting":
      return status.message ?? "Connection lost; reconnecting…";
    case "failed":
    case "expired":
      return status.message;
  }
}
