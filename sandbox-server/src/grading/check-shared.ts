/** Verdicts, matching and the shapes `docker inspect` answers with: shared by every check family. */

/** One task's verdict: pass or fail, with a sentence for the learner saying what is missing. */
export interface Verdict {
  passed: boolean;
  message: string;
}

export type Match = { includes?: string | undefined; matches?: string | undefined; equals?: string | undefined; ignoreCase?: boolean | undefined };

export const pass = (message: string): Verdict => ({ passed: true, message });
export const fail = (message: string): Verdict => ({ passed: false, message });

/** Files and logs are read up to this size; enough for any check, bounded for the server. */
export const READ_LIMIT = 1024 * 1024;

export function matches(text: string, m: Match): boolean {
  const fold = (t: string) => (m.ignoreCase ? t.toLowerCase() : t);
  if (m.equals !== undefined && fold(text.trim()) !== fold(m.equals.trim())) return false;
  if (m.includes !== undefined && !fold(text).includes(fold(m.includes))) return false;
  if (m.matches !== undefined && !new RegExp(m.matches, m.ignoreCase ? "mi" : "m").test(text)) return false;
  return true;
}

export function describeMatch(m: Match): string {
  if (m.equals !== undefined) return quote(m.equals);
  if (m.includes !== undefined) return quote(m.includes);
  return `text matching /${m.matches}/`;
}

export function quote(text: string): string {
  const t = text.trim();
  if (t === "") return "nothing";
  return `"${t.length > 80 ? t.slice(0, 77) + "…" : t}"`;
}

export function tail(stderr: string): string {
  const t = stderr.trim().split("\n").slice(-2).join(" ").slice(0, 200);
  return t ? ` It said: ${t}` : "";
}

export const MIB = 1024 * 1024;

export function formatMib(bytes: number): string {
  const mib = bytes / MIB;
  return `${Number.isInteger(mib) ? mib : mib.toFixed(1)} MiB`;
}

/** --cpus sets NanoCpus; --cpu-quota with --cpu-period (default 100 ms) is the same limit said another way. */
export function cpuLimit(h: { NanoCpus?: number; CpuQuota?: number; CpuPeriod?: number }): number | undefined {
  if (h.NanoCpus) return Math.round(h.NanoCpus / 1e7) / 100;
  if (h.CpuQuota && h.CpuQuota > 0) return Math.round((h.CpuQuota / (h.CpuPeriod || 100_000)) * 100) / 100;
  return undefined;
}

/** Compose v1 and v2 label their containers the same way. */
export function composeLabels(ct: ContainerJson): { project?: string | undefined; service?: string | undefined } {
  const labels = ct.Config.Labels ?? {};
  return { project: labels["com.docker.compose.project"], service: labels["com.docker.compose.service"] };
}

export function envValue(env: string[] | null | undefined, key: string): string | undefined {
  const hit = (env ?? []).find((e) => e.startsWith(`${key}=`));
  return hit === undefined ? undefined : hit.slice(key.length + 1);
}

export function normalizePath(p: string): string {
  return p.replace(/\/+$/, "") || "/";
}

/** `nginx`, `nginx:latest` and `docker.io/library/nginx:latest` are one image; no tag matches any tag. */
export function sameImage(actual: string, wanted: string): boolean {
  const norm = (ref: string) => {
    let r = ref.replace(/^docker\.io\//, "").replace(/^library\//, "");
    const at = r.indexOf("@");
    if (at >= 0) r = r.slice(0, at);
    const slash = r.lastIndexOf("/");
    const colon = r.lastIndexOf(":");
    return colon > slash ? { repo: r.slice(0, colon), tag: r.slice(colon + 1) } : { repo: r, tag: undefined };
  };
  const a = norm(actual);
  const w = norm(wanted);
  return a.repo === w.repo && (w.tag === undefined || (a.tag ?? "latest") === w.tag);
}

/** Joins a relative path under a root, refusing anything that climbs out. */
export function safeJoin(root: string, rel: string): string | undefined {
  const parts: string[] = [];
  for (const seg of rel.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") return undefined;
    parts.push(seg);
  }
  return `${root.replace(/\/+$/, "")}/${parts.join("/")}`;
}

export interface ImageJson {
  Id: string;
  Size: number;
  Config?: {
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Env?: string[] | null;
    ExposedPorts?: Record<string, unknown> | null;
    WorkingDir?: string;
    User?: string;
    Healthcheck?: { Test?: string[] | null } | null;
  };
  RootFS?: { Layers?: string[] };
}

export interface ContainerJson {
  Id: string;
  Name: string;
  Image: string;
  Config: { Image: string; Env?: string[] | null; Labels?: Record<string, string> | null };
  State: { Status: string; Running: boolean; ExitCode: number; OOMKilled?: boolean; Health?: { Status: string } };
  HostConfig: {
    PortBindings?: Record<string, Array<{ HostIp: string; HostPort: string }>> | null;
    AutoRemove?: boolean;
    RestartPolicy?: { Name?: string };
    Memory?: number;
    NanoCpus?: number;
    CpuQuota?: number;
    CpuPeriod?: number;
  };
  NetworkSettings?: { Networks?: Record<string, unknown> | null };
  Mounts?: Array<{ Type: string; Name?: string; Source: string; Destination: string; RW?: boolean }>;
}
