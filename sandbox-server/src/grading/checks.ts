import type { SandboxProbe } from "../runtime/types.ts";
import type { Check } from "../../../contracts/content/exercise-schema.ts";
import { CheckProbe } from "./check-probe.ts";
import type { Verdict } from "./check-shared.ts";
import { containerCheck, noContainersCheck, removedCheck } from "./container-checks.ts";
import { fileCheck, httpCheck } from "./file-http-checks.ts";
import { imageCheck, runCheck } from "./image-checks.ts";
import { composeCheck, networkCheck, volumeCheck } from "./resource-checks.ts";
import { scriptCheck } from "./script-checks.ts";

export { cpuLimit, matches, sameImage, type Verdict } from "./check-shared.ts";

/**
 * Judges checks against the sandbox's real state, through a probe whose tools the learner cannot
 * replace. Every check accepts any way of reaching the goal: it looks at results (image config,
 * container state, answers on ports), not at the commands that were typed. Each family of check
 * kinds has its file: image-checks.ts, container-checks.ts, resource-checks.ts (network, Compose,
 * volume), file-http-checks.ts, script-checks.ts (authors' scripts); check-probe.ts is what they ask the probe.
 */
export class CheckRunner {
  private readonly probe: CheckProbe;

  constructor(probe: SandboxProbe) {
    this.probe = new CheckProbe(probe);
  }

  async run(check: Check): Promise<Verdict> {
    const p = this.probe;
    switch (check.kind) {
      case "image":
        return imageCheck(p, check);
      case "run":
        return runCheck(p, check);
      case "container":
        return containerCheck(p, check);
      case "no-containers":
        return noContainersCheck(p, check);
      case "removed":
        return removedCheck(p, check);
      case "volume":
        return volumeCheck(p, check);
      case "file":
        return fileCheck(p, check);
      case "http":
        return httpCheck(p, check);
      case "network":
        return networkCheck(p, check);
      case "compose":
        return composeCheck(p, check);
      case "script":
        return scriptCheck(p, check);
    }
  }
}
