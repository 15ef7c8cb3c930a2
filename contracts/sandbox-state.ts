/**
 * The sandbox panel's socket (`/ws/sandbox-state`): what the learner's own Docker engine holds,
 * pushed whenever it changes. Documented in docs/protocol.md.
 *
 * WARNING: every string here was printed inside the learner's sandbox, where the learner is root
 * and can replace `docker`. The server bounds and checks it; the page still renders it as text only
 * and never takes a link target from it (a port's `url` is built by the server from its own records).
 *
 * Types and plain constants only (no zod): the browser imports this file.
 */

export const SANDBOX_STATE_SOCKET = "/ws/sandbox-state";

/** Caps on what one snapshot carries, so a learner cannot make the server or the page hold much. */
export const StateLimits = {
  containers: 100,
  images: 40,
  layersPerImage: 60,
  volumes: 100,
  networks: 50,
  mountsPerContainer: 20,
  envNamesPerContainer: 60,
  text: 300,
  logLines: 50,
  logLineLength: 400,
} as const;

export type ContainerStatus = "created" | "running" | "paused" | "restarting" | "removing" | "exited" | "dead";

export interface MountView {
  type: "volume" | "bind" | "tmpfs";
  /** The volume's name, or the host path of a bind mount (inside the sandbox). Empty for tmpfs. */
  source: string;
  destination: string;
  readOnly: boolean;
}

export interface ContainerPortView {
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp" | "sctp";
  /** Published on every address (or the sandbox's), not only on 127.0.0.1 inside the sandbox. */
  reachable: boolean;
}

export interface ContainerView {
  /** Full 64-hex id. */
  id: string;
  name: string;
  image: string;
  /** The image's id (sha256:…), to link a container with its image's layer stack. */
  imageId: string;
  status: ContainerStatus;
  /** Set once it has exited. */
  exitCode: number | null;
  oomKilled: boolean;
  command: string;
  mounts: MountView[];
  networks: string[];
  /** The names of its environment variables; values are never sent. */
  envNames: string[];
  ports: ContainerPortView[];
}

export interface LayerView {
  /** Oldest first; `index` 0 is the base. */
  index: number;
  /** The Dockerfile instruction that made it (RUN, COPY, …), from created-by. */
  instruction: string;
  createdBy: string;
  /** Bytes. 0 for metadata-only steps (ENV, CMD, …). */
  size: number;
  createdAt: string;
  /** Other images (by tag or short id) that have this very layer and everything below it. */
  sharedWith: string[];
}

export interface ImageView {
  id: string;
  /** `repo:tag` names; empty for a dangling image. */
  tags: string[];
  size: number;
  layers: LayerView[];
  /** Names of containers created from it. */
  usedBy: string[];
}

export interface VolumeView {
  name: string;
  driver: string;
  /** Names of containers that mount it. */
  usedBy: string[];
}

export interface NetworkView {
  name: string;
  driver: string;
  /** Docker's own bridge, host and none. */
  builtIn: boolean;
  /** Names of containers attached to it. */
  containers: string[];
}

export interface PublishedPortView {
  port: number;
  containerPort: number;
  container: string;
  /** False when published only on an address the preview cannot reach. */
  reachable: boolean;
  /** Opens the preview: a path on the site's origin, made by the server; null when unreachable. */
  url: string | null;
}

export interface SandboxState {
  containers: ContainerView[];
  images: ImageView[];
  volumes: VolumeView[];
  networks: NetworkView[];
  ports: PublishedPortView[];
  /** True when a cap cut something off (the page says "and more"). */
  truncated: boolean;
}

/** Server → page. */
export type SandboxStateMessage =
  | { type: "state"; sessionId: string; state: SandboxState; changes: string[] }
  | { type: "starting"; sessionId: string }
  | { type: "none"; message: string }
  | { type: "logs"; container: string; lines: string[]; error?: string };

/** Page → server: the last log lines of one container (by its 64-hex id), answered once. */
export interface LogsRequest {
  type: "logs";
  container: string;
}
