import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "../..");
const run = promisify(execFile);

describe("reproducible installs", () => {
  const dir = mkdtempSync(join(tmpdir(), "shipshape-lock-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("npm ci accepts package-lock.json as it is committed (a fresh clone installs without rewriting it)", async () => {
    // A copy of the two files alone: npm ci judges whether the lock matches package.json for
    // every platform (optional bindings included) before it installs anything.
    copyFileSync(join(root, "package.json"), join(dir, "package.json"));
    copyFileSync(join(root, "package-lock.json"), join(dir, "package-lock.json"));
    const result = await run("npm", ["ci", "--dry-run", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"], {
      cwd: dir,
      timeout: 120_000,
    }).then(
      () => "in sync",
      (e: { stderr?: string }) => `npm ci refused the lock file: ${e.stderr?.split("\n").slice(0, 6).join("\n")}`,
    );
    expect(result).toBe("in sync");
  }, 130_000);

  it("set-up provides the Node version package.json asks for", () => {
    const engines = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).engines.node as string;
    const setup = readFileSync(join(root, "sandbox-server/setup/ensure-node.sh"), "utf8");
    const min = /SHIPSHAPE_NODE_MIN:-([\d.]+)/.exec(setup)?.[1];
    expect(engines).toBe(`>=${min}`);
    // The server runs .ts natively and uses node:sqlite without flags from 22.18 on.
    const [major = 0, minor = 0] = (min ?? "0.0").split(".").map(Number);
    expect(major > 22 || (major === 22 && minor >= 18)).toBe(true);
  });
});
