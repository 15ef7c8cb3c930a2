/**
 * The ports published inside a sandbox, from the inner engine's `docker ps`.
 *
 * WARNING: that output is untrusted. The learner is root in the sandbox and can replace `docker`,
 * name containers and images, and print anything. So parsing is strict: a line that is not exactly
 * what `docker ps` prints is dropped whole, numbers are ports 1-65535, names and images match
 * Docker's own character sets and lengths, and the counts are capped. The result only lists links;
 * where the preview connects is still the server's own business.
 */

/** Tab-separated, one container per line; `--no-trunc` gives full 64-hex ids. */
export const DOCKER_PS_COMMAND = ["docker", "ps", "--no-trunc", "--format", "{{.ID}}\t{{.Names}}\t{{.Image}}\t{{.Ports}}"];

export const MAX_CONTAINERS = 200;
export const MAX_BINDINGS = 500;

export type Protocol = "tcp" | "udp" | "sctp";

export interface PortBinding {
  /** As docker prints it: "0.0.0.0", "::", "127.0.0.1", "" when none was printed. */
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: Protocol;
}

export interface ContainerPorts {
  id: string;
  name: string;
  image: string;
  bindings: PortBinding[];
}

export interface DockerPsResult {
  containers: ContainerPorts[];
  /** Lines dropped because they were not what `docker ps` prints (worth a log line). */
  rejectedLines: number;
}

const idPattern = /^[0-9a-f]{12,64}$/;
/** Docker's container name rule, `[a-zA-Z0-9][a-zA-Z0-9_.-]+`; legacy links add ",other/alias". */
const namePattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
/** Image references, or an image id once the tag is gone. */
const imagePattern = /^[a-zA-Z0-9][a-zA-Z0-9._:/@+-]{0,254}$/;
const ipv4Pattern = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const ipv6Pattern = /^[0-9a-f:.]{2,45}$/i;

export function parseDockerPs(output: string): DockerPsResult {
  const containers: ContainerPorts[] = [];
  let rejectedLines = 0;
  let bindings = 0;
  for (const line of output.split("\n")) {
    if (line.trim() === "") continue;
    if (containers.length >= MAX_CONTAINERS) {
      rejectedLines++;
      continue;
    }
    const parsed = parseLine(line);
    if (!parsed || bindings + parsed.bindings.length > MAX_BINDINGS) {
      rejectedLines++;
      continue;
    }
    bindings += parsed.bindings.length;
    containers.push(parsed);
  }
  return { containers, rejectedLines };
}

function parseLine(line: string): ContainerPorts | undefined {
  const fields = line.split("\t");
  if (fields.length !== 4) return undefined;
  const [id = "", names = "", image = "", ports = ""] = fields;
  const name = names.split(",")[0] ?? "";
  if (!idPattern.test(id) || !namePattern.test(name) || !imagePattern.test(image)) return undefined;
  const bindings = parsePortsField(ports);
  if (!bindings) return undefined;
  return { id, name, image, bindings };
}

/**
 * `docker ps`'s Ports column: entries separated by ", ", each either published
 * (`0.0.0.0:8080->80/tcp`, `:::8080->80/tcp`, `[::]:8080->80/tcp`, `0.0.0.0:7000-7002->7000-7002/tcp`)
 * or only exposed (`80/tcp`, skipped). undefined when anything does not fit.
 */
export function parsePortsField(field: string): PortBinding[] | undefined {
  const out: PortBinding[] = [];
  if (field === "") return out;
  if (field.length > 16_384) return undefined;
  for (const entry of field.split(", ")) {
    const arrow = entry.indexOf("->");
    if (arrow < 0) {
      if (!/^[1-9]\d{0,4}(-[1-9]\d{0,4})?\/(tcp|udp|sctp)$/.test(entry)) return undefined;
      continue;
    }
    const left = entry.slice(0, arrow);
    const right = /^([1-9]\d{0,4})(?:-([1-9]\d{0,4}))?\/(tcp|udp|sctp)$/.exec(entry.slice(arrow + 2));
    if (!right) return undefined;
    const colon = left.lastIndexOf(":");
    const ipText = colon < 0 ? "" : left.slice(0, colon);
    const hostRange = /^([1-9]\d{0,4})(?:-([1-9]\d{0,4}))?$/.exec(colon < 0 ? left : left.slice(colon + 1));
    if (!hostRange) return undefined;
    const hostIp = normaliseIp(ipText);
    if (hostIp === undefined) return undefined;
    const hostFrom = portNumber(hostRange[1]);
    const hostTo = portNumber(hostRange[2] ?? hostRange[1]);
    const containerFrom = portNumber(right[1]);
    const containerTo = portNumber(right[2] ?? right[1]);
    if (!hostFrom || !hostTo || !containerFrom || !containerTo) return undefined;
    if (hostTo < hostFrom || containerTo < containerFrom) return undefined;
    // Docker maps ranges one to one; a single container port behind a host range is also allowed.
    const span = hostTo - hostFrom;
    if (containerTo - containerFrom !== span && containerTo !== containerFrom) return undefined;
    if (out.length + span + 1 > MAX_BINDINGS) return undefined;
    for (let i = 0; i <= span; i++) {
      out.push({
        hostIp,
        hostPort: hostFrom + i,
        containerPort: containerTo === containerFrom ? containerFrom : containerFrom + i,
        protocol: right[3] as Protocol,
      });
    }
  }
  return out;
}

function portNumber(text: string | undefined): number | undefined {
  const n = Number(text);
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
}

function normaliseIp(text: string): string | undefined {
  if (text === "") return "";
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  if (ipv4Pattern.test(bare)) return bare;
  if (ipv6Pattern.test(bare) && bare.includes(":")) return bare.toLowerCase();
  return undefined;
}

export interface PortSummary {
  port: number;
  containerPort: number;
  container: string;
  image: string;
  /** False when published only on an address the preview cannot reach (127.0.0.1 inside the sandbox). */
  reachable: boolean;
}

/**
 * One entry per published TCP host port (IPv4 and IPv6 bindings of one port are one entry),
 * sorted by port. UDP is listed by `docker ps` but cannot be previewed over HTTP.
 */
export function summarisePorts(containers: ContainerPorts[], sandboxAddress: string | undefined): PortSummary[] {
  const byPort = new Map<number, PortSummary>();
  for (const c of containers) {
    for (const b of c.bindings) {
      if (b.protocol !== "tcp") continue;
      const reachable = isWildcard(b.hostIp) || (sandboxAddress !== undefined && b.hostIp === sandboxAddress);
      const known = byPort.get(b.hostPort);
      if (known) {
        known.reachable ||= reachable;
        continue;
      }
      byPort.set(b.hostPort, { port: b.hostPort, containerPort: b.containerPort, container: c.name, image: c.image, reachable });
    }
  }
  return [...byPort.values()].sort((a, b) => a.port - b.port);
}

function isWildcard(ip: string): boolean {
  return ip === "" || ip === "0.0.0.0" || ip === "::";
}
