import type { ExecResult, SandboxProbe } from "../runtime/types.ts";
import { composeLabels, READ_LIMIT, sameImage, type ContainerJson, type ImageJson } from "./check-shared.ts";

/**
 * What every check family asks the probe: the sandbox's engine (through the probe's own trusted
 * `docker`), its containers (read once per grading), and its files (through PID 1's root).
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

  containers(): Promise<ContainerJson[]> {
    this.containersCache ??= (async () => {
      const ids = await this.docker(["ps", "-aq", "--no-trunc"]);
      const list = ids.stdout.split("\n").filter((l) => /^[0-9a-f]{64}$/.test(l));
      if (list.length === 0) return [];
      const r = await this.docker(["inspect", ...list.slice(0, 200)]);
      return r.exitCode === 0 ? (JSON.parse(r.stdout) as ContainerJson[]) : [];
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

  /** Reads through PID 1's root: the sandbox's files, with the probe's own trusted `head`. */
  async readSandboxFile(path: string): Promise<string | undefined> {
    const r = await this.probe.exec(["head", "-c", String(READ_LIMIT), `/proc/1/root${path}`], { maxOutputBytes: READ_LIMIT });
    return r.exitCode === 0 ? r.stdout : undefined;
  }
}
