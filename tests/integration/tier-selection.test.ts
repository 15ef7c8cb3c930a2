/**
 * Which tier a server runs, and that it says so: `SHIPSHAPE_TIER=auto` (the default) picks the
 * isolated tier wherever LXD and its sandbox image are set up, the classroom tier when asked, and
 * /readyz names the tier so a host owner (and the instructor view) can see it.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { lxdImage, startTestApp, testEnv } from "../support/server.ts";
import { lxdSkipped, reportLxdSkip } from "../support/lxd.ts";

reportLxdSkip("tier-selection.test.ts");

let app: App | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function readyz(url: string): Promise<{ tier?: string; ready: boolean }> {
  return (await (await fetch(`${url}/readyz`)).json()) as { tier?: string; ready: boolean };
}

describe("tier selection", () => {
  it("runs the classroom tier when asked, and says so on /readyz", async () => {
    app = await startTestApp(testEnv({ SHIPSHAPE_TIER: "classroom" }));
    expect(app.runtime.name).toBe("docker");
    expect((await readyz(app.url)).tier).toBe("classroom");
  });

  it.skipIf(lxdSkipped())("runs the isolated tier by default where LXD is set up, and says so on /readyz", async () => {
    // The default (auto), with the data set-up leaves: the LXD image alias it imported.
    const env = testEnv({ SHIPSHAPE_LXD_IMAGE: lxdImage() });
    delete env.SHIPSHAPE_TIER;
    app = await startTestApp(env);
    expect(app.runtime.name).toBe("lxd");
    const ready = await readyz(app.url);
    expect(ready.tier).toBe("isolated");
    expect(ready.ready).toBe(true);
  });
});
