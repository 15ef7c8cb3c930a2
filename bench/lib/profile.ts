import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { round } from "./stats.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  self_pct: number;
  function: string;
  where: string;
}

/** Self time per function (top `limit`), and per package/area, from the V8 .cpuprofile files in `dir`. */
export function summarizeProfiles(dir: string, limit = 20): { samples: number; top: HotSpot[]; byArea: Record<string, number> } {
  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  let total = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))) {
    const profile = JSON.parse(readFileSync(path.join(dir, file), "utf8")) as CpuProfile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    profile.samples.forEach((id, i) => {
      const node = byId.get(id);
      if (!node) return;
      const dt = profile.timeDeltas[i] ?? 0;
      const { functionName, url, lineNumber } = node.callFrame;
      const key = `${functionName || "(anonymous)"}\t${shortUrl(url)}:${lineNumber + 1}`;
      self.set(key, (self.get(key) ?? 0) + dt);
      const area = areaOf(functionName, url);
      areas.set(area, (areas.get(area) ?? 0) + dt);
      total += dt;
    });
  }
  const pct = (v: number) => round((100 * v) / (total || 1));
  const top = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([key, v]) => {
      const [fn, where] = key.split("\t");
      return { self_pct: pct(v), function: fn!, where: where! };
    });
  const byArea = Object.fromEntries([...areas.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, pct(v)]));
  return { samples: total, top, byArea };
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) return url.slice(nm + "node_modules/".length);
  const src = url.indexOf("sandbox-server/");
  return src >= 0 ? url.slice(src) : url.replace(/^file:\/\//, "") || "(native)";
}

/** Coarse buckets: which package or layer the time is spent in. */
function areaOf(fn: string, url: string): string {
  if (fn === "(idle)") return "idle";
  if (fn === "(garbage collector)") return "garbage collector";
  if (fn === "(program)") return "V8/native (program)";
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  const s = /sandbox-server\/src\/([^/]+\/[^/.]+)/.exec(url);
  if (s) return `server: ${s[1]}`;
  if (url.startsWith("node:")) return "node core";
  return url ? "other" : `native: ${fn}`;
}
