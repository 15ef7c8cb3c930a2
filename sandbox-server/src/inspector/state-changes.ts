/**
 * What changed between two snapshots, in the words a screen reader says
 * ("container web started, publishes 8080"). Pure, so the tests can read the sentences.
 */
import type { ContainerView, SandboxState } from "../../../contracts/sandbox-state.ts";
import { imageLabel } from "./engine-state.ts";

/** At most this many sentences per change; the rest is "and N more changes". */
const MAX_SENTENCES = 8;

export function describeChanges(before: SandboxState | undefined, after: SandboxState): string[] {
  if (!before) return [];
  const out: string[] = [];
  const had = new Map(before.containers.map((c) => [c.id, c]));
  const has = new Set(after.containers.map((c) => c.id));
  for (const c of after.containers) {
    const old = had.get(c.id);
    const published = c.ports.filter((p) => p.protocol === "tcp").map((p) => p.hostPort);
    const publishes = published.length ? `, publishes ${published.join(", ")}` : "";
    if (!old) {
      if (c.status === "running") out.push(`container ${c.name} started${publishes}`);
      else out.push(`container ${c.name} created${c.status === "exited" ? `, ${exitWords(c)}` : ""}`);
      continue;
    }
    if (old.name !== c.name) out.push(`container ${old.name} renamed to ${c.name}`);
    if (old.status === c.status) continue;
    if (c.status === "running") out.push(`container ${c.name} ${old.status === "paused" ? "resumed" : "started"}${publishes}`);
    else if (c.status === "exited" || c.status === "dead") out.push(`container ${c.name} ${exitWords(c)}`);
    else out.push(`container ${c.name} is ${c.status}`);
  }
  for (const c of before.containers) if (!has.has(c.id)) out.push(`container ${c.name} removed`);

  const oldImages = new Map(before.images.map((i) => [i.id, i]));
  const newImageIds = new Set(after.images.map((i) => i.id));
  for (const i of after.images) {
    const old = oldImages.get(i.id);
    if (!old) {
      const shared = i.layers.filter((l) => l.sharedWith.length > 0).length;
      out.push(`image ${imageLabel(i)} added, ${i.layers.length} layers${shared ? `, ${shared} shared with other images` : ""}`);
    } else if (imageLabel(old) !== imageLabel(i)) out.push(`image ${imageLabel(old)} now tagged ${imageLabel(i)}`);
  }
  for (const i of before.images) if (!newImageIds.has(i.id)) out.push(`image ${imageLabel(i)} removed`);

  diffNames(before.volumes, after.volumes, "volume", out);
  diffNames(
    before.networks.filter((n) => !n.builtIn),
    after.networks.filter((n) => !n.builtIn),
    "network",
    out,
  );
  if (out.length > MAX_SENTENCES) return [...out.slice(0, MAX_SENTENCES - 1), `and ${out.length - MAX_SENTENCES + 1} more changes`];
  return out;
}

function exitWords(c: ContainerView): string {
  if (c.oomKilled) return "was killed: out of memory";
  return c.exitCode === null ? "stopped" : `exited with code ${c.exitCode}`;
}

function diffNames(before: { name: string }[], after: { name: string }[], kind: string, out: string[]): void {
  const had = new Set(before.map((v) => v.name));
  const has = new Set(after.map((v) => v.name));
  for (const v of after) if (!had.has(v.name)) out.push(`${kind} ${v.name} created`);
  for (const v of before) if (!has.has(v.name)) out.push(`${kind} ${v.name} removed`);
}
