/**
 * Reads the state of a sandbox's inner Docker engine in one exec, and parses it.
 *
 * WARNING: the output is untrusted. The learner is root in the sandbox and can replace `docker` or
 * `sh`, so everything printed is treated as hostile text: each record must be a JSON object of the
 * expected shape (others are dropped and counted), strings are cut to StateLimits.text, lists are
 * capped, numbers are checked. Nothing parsed here decides where a preview connects.
 */
import {
  StateLimits,
  type ContainerPortView,
  type ContainerStatus,
  type ContainerView,
  type ImageView,
  type LayerView,
  type MountView,
  type NetworkView,
  type SandboxState,
  type VolumeView,
} from "../../../contracts/sandbox-state.ts";

const IMAGE_ID = /^sha256:[0-9a-f]{64}$/;

/**
 * One shell script, so a read costs one exec: each section starts with a `@@name` line and prints
 * one JSON object per line. Env values never leave the sandbox (the template prints names only),
 * and the parser drops anything after "=" anyway, because the template is not what guarantees it.
 */
const SCRIPT = String.raw`
ids=$(docker ps -aq --no-trunc 2>/dev/null | head -n ${StateLimits.containers})
echo @@containers
[ -n "$ids" ] && docker inspect --format '{"id":{{json .Id}},"name":{{json .Name}},"image":{{json .Config.Image}},"imageId":{{json .Image}},"state":{"status":{{json .State.Status}},"exitCode":{{json .State.ExitCode}},"oom":{{json .State.OOMKilled}},"startedAt":{{json .State.StartedAt}}},"path":{{json .Path}},"args":{{json .Args}},"mounts":{{json .Mounts}},"networks":[{{range $k, $v := .NetworkSettings.Networks}}{{json $k}},{{end}}""],"env":[{{range .Config.Env}}{{json (index (split . "=") 0)}},{{end}}""],"ports":{{json .NetworkSettings.Ports}}}' $ids 2>/dev/null
images=$(docker image ls -q --no-trunc 2>/dev/null | awk '!seen[$0]++' | head -n ${StateLimits.images})
echo @@images
[ -n "$images" ] && docker image inspect --format '{"id":{{json .Id}},"tags":{{json .RepoTags}},"size":{{json .Size}}}' $images 2>/dev/null
for i in $images; do
  case " $* " in *" $i "*) continue ;; esac
  echo "@@history $i"
  docker history --no-trunc --human=false --format '{"at":{{json .CreatedAt}},"size":{{json .Size}},"by":{{json .CreatedBy}}}' "$i" 2>/dev/null | head -n ${StateLimits.layersPerImage + 1}
done
echo @@volumes
docker volume ls --format '{"name":{{json .Name}},"driver":{{json .Driver}}}' 2>/dev/null | head -n ${StateLimits.volumes + 1}
echo @@networks
docker network ls --no-trunc --format '{"name":{{json .Name}},"driver":{{json .Driver}}}' 2>/dev/null | head -n ${StateLimits.networks + 1}
echo @@end
`;

/**
 * The read, skipping `docker history` for images whose layers the caller already has: an image id
 * is the hash of its content, so its history never changes, and most reads find the same images.
 */
export function engineStateCommand(knownImageIds: Iterable<string> = []): string[] {
  const known = [...knownImageIds].filter((id) => IMAGE_ID.test(id)).slice(0, StateLimits.images);
  return ["sh", "-c", SCRIPT, "engine-state", ...known];
}

export const ENGINE_STATE_COMMAND = engineStateCommand();

/** The most output one read may return; more means a learner is filling it on purpose. */
export const MAX_STATE_OUTPUT_BYTES = 1024 * 1024;

/** What one read found, before the server adds preview links. */
export interface EngineState {
  containers: ContainerView[];
  images: ImageView[];
  volumes: VolumeView[];
  networks: NetworkView[];
  truncated: boolean;
  /** Records dropped because they were not what docker prints (worth a log line). */
  rejected: number;
  /** Each listed image's layers, read now or taken from `known`: the next read's cache. */
  histories: Map<string, Omit<LayerView, "sharedWith">[]>;
}

const HEX64 = /^[0-9a-f]{64}$/;
/** Docker's name rules, a little wider (volume and network names share them). */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const IMAGE_REF = /^[a-zA-Z0-9][a-zA-Z0-9._:/@+-]{0,254}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
const STATUSES: readonly ContainerStatus[] = ["created", "running", "paused", "restarting", "removing", "exited", "dead"];
const BUILT_IN_NETWORKS = new Set(["bridge", "host", "none"]);

/** Printable text, cut to the limit (control characters become spaces: they could move a terminal's cursor, and mean nothing here). */
export function cleanText(value: unknown, max: number = StateLimits.text): string | undefined {
  if (typeof value !== "string") return undefined;
  // eslint-disable-next-line no-control-regex
  const text = value.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, " ");
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function record(line: string): Record<string, unknown> | undefined {
  if (line.length > 64 * 1024) return undefined;
  try {
    const v: unknown = JSON.parse(line);
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function bytes(v: unknown): number | undefined {
  const n = typeof v === "string" && /^\d{1,15}$/.test(v) ? Number(v) : v;
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function port(v: unknown): number | undefined {
  const n = typeof v === "string" && /^\d{1,5}$/.test(v) ? Number(v) : v;
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
}

/** Splits the script's output into its sections; lines outside any section are ignored. */
export function splitSections(output: string): Map<string, string[]> {
  const sections = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of output.split("\n")) {
    if (line.startsWith("@@")) {
      const name = line.slice(2).trim();
      current = [];
      if (!sections.has(name)) sections.set(name, current);
      else current = undefined; // a repeated section is a fake: keep the first
      continue;
    }
    if (current && line.trim() !== "") current.push(line);
  }
  return sections;
}

export function parseContainer(line: string): ContainerView | undefined {
  const r = record(line);
  if (!r) return undefined;
  const id = r.id;
  const name = typeof r.name === "string" ? r.name.replace(/^\//, "") : "";
  const image = typeof r.image === "string" ? r.image : "";
  const imageId = r.imageId;
  if (typeof id !== "string" || !HEX64.test(id) || !NAME.test(name) || typeof imageId !== "string" || !IMAGE_ID.test(imageId)) return undefined;
  if (image !== "" && !IMAGE_REF.test(image)) return undefined;
  const state = (r.state ?? {}) as Record<string, unknown>;
  const status = STATUSES.find((s) => s === state.status);
  if (!status) return undefined;
  const exit = state.exitCode;
  const exitCode = typeof exit === "number" && Number.isInteger(exit) && exit >= -1 && exit <= 255 ? exit : null;
  const args = Array.isArray(r.args) ? r.args : [];
  const command = cleanText([r.path, ...args].filter((a): a is string => typeof a === "string").join(" ")) ?? "";
  const mounts: MountView[] = [];
  for (const m of Array.isArray(r.mounts) ? r.mounts.slice(0, StateLimits.mountsPerContainer) : []) {
    const mount = parseMount(m);
    if (mount) mounts.push(mount);
  }
  const networks = stringList(r.networks, StateLimits.networks).filter((n) => NAME.test(n));
  const envNames = stringList(r.env, StateLimits.envNamesPerContainer)
    .map((e) => e.split("=")[0] ?? "")
    .filter((n) => ENV_NAME.test(n));
  return {
    id,
    name,
    image: image || imageId.slice(7, 19),
    imageId,
    status,
    // Docker reports 0 for a container that never ran; only an exited one has a code worth showing.
    exitCode: status === "exited" || status === "dead" ? exitCode : null,
    oomKilled: state.oom === true,
    command,
    mounts,
    networks,
    envNames,
    ports: parsePortMap(r.ports),
  };
}

function stringList(v: unknown, max: number): string[] {
  if (!Array.isArray(v)) return [];
  return v.filter((s): s is string => typeof s === "string" && s !== "" && s.length <= 256).slice(0, max);
}

function parseMount(m: unknown): MountView | undefined {
  if (!m || typeof m !== "object") return undefined;
  const o = m as Record<string, unknown>;
  const type = o.Type;
  if (type !== "volume" && type !== "bind" && type !== "tmpfs") return undefined;
  const source = type === "volume" ? o.Name : type === "bind" ? o.Source : "";
  const destination = cleanText(o.Destination);
  const src = cleanText(source);
  if (src === undefined || !destination) return undefined;
  if (type === "volume" && !NAME.test(src)) return undefined;
  return { type, source: src, destination, readOnly: o.RW === false };
}

/** `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": null}`: only published ones. */
function parsePortMap(v: unknown): ContainerPortView[] {
  if (!v || typeof v !== "object" || Array.isArray(v)) return [];
  const out: ContainerPortView[] = [];
  const seen = new Map<string, ContainerPortView>();
  for (const [key, bindings] of Object.entries(v as Record<string, unknown>).slice(0, 200)) {
    const m = /^(\d{1,5})\/(tcp|udp|sctp)$/.exec(key);
    const containerPort = port(m?.[1]);
    if (!m || !containerPort || !Array.isArray(bindings)) continue;
    for (const b of bindings.slice(0, 10)) {
      const binding = (b ?? {}) as Record<string, unknown>;
      const hostPort = port(binding.HostPort);
      if (!hostPort) continue;
      const reachable = binding.HostIp === "" || binding.HostIp === "0.0.0.0" || binding.HostIp === "::" || binding.HostIp === undefined;
      const k = `${hostPort}/${m[2]}`;
      const known = seen.get(k);
      // IPv4 and IPv6 bindings of one port are one entry.
      if (known) {
        known.reachable ||= reachable;
        continue;
      }
      const view: ContainerPortView = { hostPort, containerPort, protocol: m[2] as ContainerPortView["protocol"], reachable };
      seen.set(k, view);
      out.push(view);
    }
  }
  return out.sort((a, b) => a.hostPort - b.hostPort);
}

interface RawImage {
  id: string;
  tags: string[];
  size: number;
}

export function parseImage(line: string): RawImage | undefined {
  const r = record(line);
  if (!r || typeof r.id !== "string" || !IMAGE_ID.test(r.id)) return undefined;
  const size = bytes(r.size);
  if (size === undefined) return undefined;
  const tags = stringList(r.tags, 10).filter((t) => IMAGE_REF.test(t) && !t.startsWith("<none>"));
  return { id: r.id, tags, size };
}

/** `docker history` lines, newest first as docker prints them; returned oldest first. */
export function parseHistory(lines: string[]): Omit<LayerView, "sharedWith">[] | undefined {
  const layers: Omit<LayerView, "sharedWith">[] = [];
  for (const line of lines.slice(0, StateLimits.layersPerImage)) {
    const r = record(line);
    const size = bytes(r?.size);
    const createdBy = cleanText(r?.by, 2_000);
    const createdAt = cleanText(r?.at, 64);
    if (!r || size === undefined || createdBy === undefined || createdAt === undefined) return undefined;
    layers.push({ index: 0, instruction: instructionOf(createdBy), createdBy, size, createdAt });
  }
  layers.reverse();
  layers.forEach((l, i) => (l.index = i));
  return layers;
}

/**
 * The Dockerfile instruction behind a history entry: BuildKit writes `RUN /bin/sh -c …`, `COPY …`,
 * the classic builder `/bin/sh -c #(nop)  CMD […]` for metadata and `/bin/sh -c …` for RUN.
 */
export function instructionOf(createdBy: string): string {
  const nop = /#\(nop\)\s+([A-Z]+)\b/.exec(createdBy);
  if (nop) return nop[1]!;
  const word = /^([A-Z]{2,12})\b/.exec(createdBy.trim());
  if (word) return word[1]!;
  // The classic builder's RUN, with build arguments (`|1 TARGETARCH=amd64 /bin/sh -c …`) or without.
  if (/^(\|\d+ .*?)?\/bin\/(ba)?sh -c /.test(createdBy)) return "RUN";
  return "";
}

function parseNamed(line: string): { name: string; driver: string } | undefined {
  const r = record(line);
  if (!r || typeof r.name !== "string" || !NAME.test(r.name)) return undefined;
  const driver = cleanText(r.driver, 64) ?? "";
  return { name: r.name, driver };
}

/** The whole read: sections to views, cross-linked (who uses which image, volume, network). */
export function parseEngineState(output: string, known: ReadonlyMap<string, Omit<LayerView, "sharedWith">[]> = new Map()): EngineState {
  const sections = splitSections(output);
  let rejected = 0;
  let truncated = !sections.has("end");
  const take = <T>(name: string, max: number, parse: (line: string) => T | undefined): T[] => {
    const out: T[] = [];
    const lines = sections.get(name) ?? [];
    if (lines.length > max) truncated = true;
    for (const line of lines.slice(0, max)) {
      const v = parse(line);
      if (v === undefined) rejected++;
      else out.push(v);
    }
    return out;
  };
  const containers = dedupe(take("containers", StateLimits.containers, parseContainer), (c) => c.id);
  const rawImages = dedupe(take("images", StateLimits.images, parseImage), (i) => i.id);
  const volumesRaw = dedupe(take("volumes", StateLimits.volumes, parseNamed), (v) => v.name);
  const networksRaw = dedupe(take("networks", StateLimits.networks, parseNamed), (n) => n.name);

  const histories = new Map<string, Omit<LayerView, "sharedWith">[]>();
  for (const image of rawImages) {
    const lines = sections.get(`history ${image.id}`);
    if (!lines) {
      const cached = known.get(image.id);
      if (cached) histories.set(image.id, cached);
      continue;
    }
    if (lines.length > StateLimits.layersPerImage) truncated = true;
    const layers = parseHistory(lines);
    if (layers) histories.set(image.id, layers);
    else rejected++;
  }

  const images: ImageView[] = rawImages.map((i) => ({
    id: i.id,
    tags: i.tags,
    size: i.size,
    layers: [],
    usedBy: containers.filter((c) => c.imageId === i.id).map((c) => c.name),
  }));
  markSharedLayers(images, histories);

  const volumes: VolumeView[] = volumesRaw.map((v) => ({
    ...v,
    usedBy: containers.filter((c) => c.mounts.some((m) => m.type === "volume" && m.source === v.name)).map((c) => c.name),
  }));
  const networks: NetworkView[] = networksRaw.map((n) => ({
    ...n,
    builtIn: BUILT_IN_NETWORKS.has(n.name),
    containers: containers.filter((c) => c.networks.includes(n.name)).map((c) => c.name),
  }));
  containers.sort((a, b) => a.name.localeCompare(b.name));
  images.sort((a, b) => imageLabel(a).localeCompare(imageLabel(b)));
  volumes.sort((a, b) => a.name.localeCompare(b.name));
  networks.sort((a, b) => Number(a.builtIn) - Number(b.builtIn) || a.name.localeCompare(b.name));
  return { containers, images, volumes, networks, truncated, rejected, histories };
}

function dedupe<T>(items: T[], key: (t: T) => string): T[] {
  const seen = new Set<string>();
  return items.filter((t) => (seen.has(key(t)) ? false : (seen.add(key(t)), true)));
}

/** The name the page shows for an image: its first tag, or its short id. */
export function imageLabel(image: Pick<ImageView, "id" | "tags">): string {
  return image.tags[0] ?? image.id.slice(7, 19);
}

/**
 * A layer is shared when another image has the very same history up to and including it: same
 * steps, same sizes, same creation times. That is what a cache hit on a second build, or a common
 * base image, looks like; a step rebuilt without the cache has a new time and is not shared.
 */
export function markSharedLayers(images: ImageView[], histories: Map<string, Omit<LayerView, "sharedWith">[]>): void {
  const owners = new Map<string, Set<string>>();
  const keysOf = new Map<string, string[]>();
  for (const image of images) {
    const layers = histories.get(image.id) ?? [];
    let key = "";
    const keys: string[] = [];
    for (const l of layers) {
      key = `${key}\n${l.createdAt}\t${l.size}\t${l.createdBy}`;
      keys.push(key);
      const set = owners.get(key) ?? new Set<string>();
      set.add(image.id);
      owners.set(key, set);
    }
    keysOf.set(image.id, keys);
  }
  const label = new Map(images.map((i) => [i.id, imageLabel(i)]));
  for (const image of images) {
    const layers = histories.get(image.id) ?? [];
    const keys = keysOf.get(image.id) ?? [];
    image.layers = layers.map((l, i) => ({
      ...l,
      sharedWith: [...(owners.get(keys[i]!) ?? [])].filter((id) => id !== image.id).map((id) => label.get(id) ?? id.slice(7, 19)),
    }));
  }
}

/** The snapshot without ports, from a read; the watcher adds the ports with their preview links. */
export function toSandboxState(engine: EngineState, ports: SandboxState["ports"]): SandboxState {
  const { containers, images, volumes, networks, truncated } = engine;
  return { containers, images, volumes, networks, ports, truncated };
}
