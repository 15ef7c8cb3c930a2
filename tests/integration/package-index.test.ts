import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshSandbox, testRuntime } from "../support/sandbox.ts";

/**
 * The offline Python package index (sandbox-server/images/pypi), as a learner meets it: inside a
 * sandbox with no internet, `pip` in the python:3.11-slim stand-in installs what the index holds,
 * dependencies included, and for anything else says in words that the package is not in the
 * course's offline index and what the index holds, instead of "from versions: none".
 * One sandbox for the file; the pandas install itself is proven by the pandas-cli lesson's CI.
 */
const runtime = testRuntime();
let sandboxId = "";

beforeAll(async () => {
  sandboxId = (await freshSandbox(runtime, "package-index")).id;
}, 120_000);

afterAll(async () => {
  if (sandboxId) await runtime.destroy(sandboxId);
  await runtime.close();
});

/** Runs a shell command in a python:3.11-slim container inside the sandbox, as a Dockerfile's RUN would. */
async function inPython(command: string) {
  const r = await runtime.exec(sandboxId, ["docker", "run", "--rm", "python:3.11-slim", "sh", "-c", command], { timeoutMs: 180_000 });
  return { exitCode: r.exitCode, output: r.stdout + r.stderr };
}

describe("the package index beside the registry mirror", () => {
  it("installs a package and its dependency from the index, by default, with no internet", { timeout: 240_000 }, async () => {
    const r = await inPython('pip install python-dateutil && python -c "import dateutil, six; print(dateutil.__version__, six.__version__)"');
    expect(r.output).toMatch(/Looking in indexes: http:\/\/[\d.]+:5000\/simple\//);
    expect(r.output).toContain("Successfully installed python-dateutil-2.8.2 six-1.16.0");
    expect(r.output).toContain("2.8.2 1.16.0");
    expect(r.exitCode).toBe(0);
  });

  it("says a package is not in the offline index, and what the index holds", { timeout: 240_000 }, async () => {
    const r = await inPython("pip install requests");
    expect(r.exitCode).not.toBe(0);
    expect(r.output).toContain("This package is not in this course's offline package index.");
    expect(r.output).toMatch(/numpy 1\.24\.2, pandas 1\.5\.3, python-dateutil 2\.8\.2, pytz [\d.]+, six 1\.16\.0, tzdata [\d.]+/);
    // A pinned version the index does not have is named by pip itself, with the version it has.
    const pinned = await inPython("pip install pandas==2.2.0");
    expect(pinned.output).toContain("Could not find a version that satisfies the requirement pandas==2.2.0 (from versions: 1.5.3)");
  });

  it("leaves the registry behind the same port working: the stand-in was pulled through it", async () => {
    const r = await runtime.exec(sandboxId, ["docker", "image", "inspect", "-f", "{{index .Config.Labels \"org.shipshape.standin-of\"}}", "python:3.11-slim"]);
    expect(r.stdout.trim()).toBe("python:3.11-slim");
  });
});
