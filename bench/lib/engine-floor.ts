import type { Duplex } from "node:stream";
import Docker from "dockerode";

/**
 * The floor's one way to the engine: an exec with a TTY straight through the Docker engine API,
 * with no server, runtime, dtach, WebSocket, mirror or flow control in between. It measures what
 * any server must at least pay, so it cannot go through the runtime (whose shell adds dtach).
 * The only bench file that imports dockerode (tests/support/import-graph.ts holds it to that).
 */
const docker = new Docker();

export interface FloorExec {
  stream: Duplex;
  /** performance.now() just before the exec started (after it was created): where throughput is timed from. */
  startedAt: number;
  resize(size: { cols: number; rows: number }): Promise<void>;
}

export async function floorExec(sandboxId: string, cmd: string[], options: { stdin: boolean; env?: string[] }): Promise<FloorExec> {
  const exec = await docker.getContainer(sandboxId).exec({
    Cmd: cmd,
    AttachStdin: options.stdin,
    AttachStdout: true,
    AttachStderr: true,
    Tty: true,
    ...(options.env ? { Env: options.env } : {}),
  });
  const startedAt = performance.now();
  const stream = (await exec.start({ hijack: true, stdin: options.stdin, Tty: true })) as Duplex;
  return { stream, startedAt, resize: ({ cols, rows }) => exec.resize({ h: rows, w: cols }).then(() => {}) };
}
