import type { ExecResult, SandboxProbe } from "../runtime/types.ts";
import { composeLabels, READ_LIMIT, sameImage, type ContainerJson, type ImageJson } from "./check-shared.ts";

/**
 * What every check family asks the probe: the sandbox's engine (through the probe's own trusted
 * `docker`), its containers (read once per grading), and its files (through the probe's file reader).
 */
export class CheckProbe {
  readonly probe: SandboxProbe;
  private containersCache: Promise<ContainerJson[]> | undefined;

  constructor(probe: SandboxProbe) {
    this.probe = probe;
  }

  docker(args: string[], timeoutMs = 15_000): Promise<ExecResult> {
    return this.probe.exec(["docker", ...args], { timeoutMs, maxOutputBytes: READ_LIMIT });
  }

  async inspectImage(ref: string): Promise<ImageJson | undefined> {
    const r = await this.docker(["image", "inspect", ref]);
    if (r.exitCode !== 0) return undefined;
    return (JSON.parse(r.stdout) as ImageJson[])[0];
  }

  /**
   * Every container of the engine. An engine that does not answer is not an empty one (that read
   * "nothing is left over" as a pass): failures throw, and the task cannot be judged.
   */
  containers(): Promise<ContainerJson[]> {
    this.containersCache ??= (async () => {
      const ids = await this.docker(["ps", "-aq", "--no-trunc"]);
      if (ids.exitCode !== 0) throw new Error(`docker ps: exit ${ids.exitCode} ${ids.stderr.trim()}`);
      const list = ids.stdout.split("\n").filter((l) => /^[0-9a-f]{64}$/.test(l));
      if (list.length === 0) return [];
      const r = await this.docker(["inspect", ...list.slice(0, 200)]);
      // A container removed between the two calls (--rm) fails the inspect but not the others' JSON.
      try {
        return JSON.parse(r.stdout) as ContainerJson[];
      } catch {
        throw new Error(`docker inspect: exit ${r.exitCode} ${r.stderr.trim()}`);
      }
    })();
    return this.containersCache;
  }

  async candidates(
    name: string | undefined,
    image: string | undefined,
    compose: { project?: string | undefined; service?: string | undefined } = {},
  ): Promise<ContainerJson[]> {
    const all = await this.containers();
    const imageId = image ? (await this.inspectImage(image))?.Id : undefined;
    return all.filter(
      (c) =>
        (name === undefined || c.Name.replace(/^\//, "") === name) &&
        (image === undefined || c.Image === imageId || sameImage(c.Config.Image, image)) &&
        (compose.project === undefined || composeLabels(c).project === compose.project) &&
        (compose.service === undefined || composeLabels(c).service === compose.service),
    );
  }

  /** The sandbox's file as its root sees it, read by the probe's own trusted reader. */
  readSandboxFile(path: string): Promise<string | undefined> {
    return this.probe.readFile(path, READ_LIMIT);
  }
}
