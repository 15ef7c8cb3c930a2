import { MEMBER_LOST_MESSAGE } from "../runtime/types.ts";
import type { SessionPolicy } from "./session-manager.ts";

/** What a learner reads when a sandbox ends or nears a limit: one wording for every path that says it. */

export const mib = (bytes: number) => `${Math.round(bytes / 1024 ** 2)} MiB`;
export const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;

export function diskOverMessage(used: number, limit: number): string {
  return `Your sandbox used ${gib(used)} of disk, over its ${gib(limit)} limit, and was stopped. Start a new one.`;
}

function minutes(ms: number): string {
  const m = Math.round(ms / 60_000);
  return m >= 120 ? `${Math.round(m / 60)} hours` : `${m} minutes`;
}

export function expiredMessage(reason: string, policy: SessionPolicy): string {
  return reason.includes("idle")
    ? `Your sandbox was removed after ${minutes(policy.idleTimeoutMs)} without activity. Start a new one.`
    : `Your sandbox reached its time limit of ${minutes(policy.ttlMs)} and was removed. Start a new one.`;
}

export function sandboxGoneMessage(reason: string, policy: SessionPolicy): string {
  if (reason.includes("oom")) {
    return `Your sandbox ran out of memory (its limit is ${mib(policy.limits.memoryBytes)}) and was stopped. Start a new one.`;
  }
  if (reason.includes("member-lost")) {
    // A cluster member (one of the machines sandboxes run on) went down with this sandbox.
    return MEMBER_LOST_MESSAGE;
  }
  return "Your sandbox stopped. Start a new one.";
}
