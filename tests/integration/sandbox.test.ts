import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp } from "../support/server.ts";
import { openSession, TestTerminal } from "../support/terminal.ts";
import type { App } from "../../sandbox-server/src/app.ts";

// A learner's real Docker engine, driven through the same terminal socket the browser uses.
describe("inside a sandbox", () => {
  let app: App;
  let term: TestTerminal;

  beforeAll(async () => {
    app = await startTestApp();
    term = new TestTerminal(await openSession(app.url));
    await term.ready(60_000);
  });

  afterAll(async () => {
    term?.close();
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  it("has its own Docker engine, client and server", async () => {
    const out = await term.run("docker version --format 'client={{.Client.Version}} server={{.Server.Version}}'");
    expect(out).toMatch(/client=\d+\.\d+\S* server=\d+\.\d+/);
  });

  it("builds an image with ENTRYPOINT and CMD and runs it with and without arguments", async () => {
    await term.run(
      "mkdir -p /root/greet && printf 'FROM debian:bookworm-slim\\nENTRYPOINT [\"echo\", \"Hello\"]\\nCMD [\"world\"]\\n' > /root/greet/Dockerfile",
    );
    const build = await term.run("docker build -q -t greet /root/greet", 120_000);
    expect(build).toMatch(/sha256:[0-9a-f]{64}/);
    expect(await term.run("docker run --rm greet")).toContain("Hello world");
    expect(await term.run("docker run --rm greet Pavlos")).toContain("Hello Pavlos");
  });

  it("pulls lesson images through the local mirror with no internet registry", async () => {
    const out = await term.run("docker pull python:3.11-slim && docker run --rm python:3.11-slim python3 -c 'import sys; print(\"py\", sys.version_info[:2])'", 180_000);
    expect(out).toContain("py (3, 11)");
  });

  it("publishes a port that answers inside the sandbox", async () => {
    await term.run("docker run -d --name web -p 8080:80 nginx", 120_000);
    const out = await term.run("for i in $(seq 50); do curl -fsS localhost:8080 && break; sleep 0.2; done");
    expect(out).toContain("Welcome to nginx!");
  });

  it("keeps a named volume after its container is gone", async () => {
    await term.run("docker run --rm -v notes:/data debian:bookworm-slim sh -c 'echo kept-$((6*7)) > /data/note'");
    const out = await term.run("docker run --rm -v notes:/data debian:bookworm-slim cat /data/note");
    expect(out).toContain("kept-42");
  });
});
