import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { importGraph, importsOf, layerViolations, unitOf } from "../support/import-graph.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

describe("architecture: imports follow the layers of docs/architecture.md", () => {
  it("no import in contracts/, sandbox-server/src/, src/ or bench/ runs against the layers", () => {
    expect(layerViolations(repoRoot)).toEqual([]);
  });

  it("reads the real graph: it sees the imports the layers are about", () => {
    // Without these, an empty or unreadable graph would pass the test above.
    const graph = importGraph(repoRoot);
    const has = (from: string, to: string) => graph.some((i) => i.from === from && i.to === to);
    expect(graph.length).toBeGreaterThan(150);
    expect(has("sandbox-server/src/transport/terminal-socket.ts", "contracts/terminal-protocol.ts")).toBe(true);
    expect(has("sandbox-server/src/transport/grading-routes.ts", "sandbox-server/src/grading/grading-service.ts")).toBe(true);
    expect(has("src/client/terminal/terminal-connection.ts", "contracts/close-codes.ts")).toBe(true);
    expect(has("src/user-components/Terminal.astro", "src/client/terminal/terminal-island.ts")).toBe(true);
    expect(has("sandbox-server/src/runtime/docker-runtime.ts", "dockerode")).toBe(true);
    expect(has("bench/lib/floor.ts", "bench/lib/engine-floor.ts")).toBe(true);
  });

  it("places every source file in a layer", () => {
    const files = new Set(importGraph(repoRoot).map((i) => i.from));
    expect([...files].filter((f) => !unitOf(f))).toEqual([]);
  });
});

describe("the layer check", () => {
  let root: string | undefined;
  afterEach(() => {
    if (root) rmSync(root, { recursive: true, force: true });
    root = undefined;
  });

  /** A tiny tree with the given files, to prove the check fails where it should. */
  function tree(files: Record<string, string>): string {
    root = mkdtempSync(path.join(tmpdir(), "shipshape-layers-"));
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), text);
    }
    return root;
  }

  it("names a domain module that imports the transport, and the rule it breaks", () => {
    const dir = tree({
      "sandbox-server/src/transport/protocol.ts": "export const CloseCode = { normal: 1000 };\n",
      "sandbox-server/src/sessions/session-manager.ts": 'import { CloseCode } from "../transport/protocol.ts";\n',
    });
    expect(layerViolations(dir)).toEqual([
      "sandbox-server/src/sessions/session-manager.ts:1 imports sandbox-server/src/transport/protocol.ts: sessions may import only sessions, runtime, store, common, contracts, not transport",
    ]);
  });

  it("refuses the transport reaching past the domain into the store or the runtime", () => {
    const dir = tree({
      "sandbox-server/src/store/store.ts": "export class Store {}\n",
      "sandbox-server/src/runtime/types.ts": "export interface SandboxRuntime {}\n",
      "sandbox-server/src/transport/quiz-routes.ts":
        'import type { Store } from "../store/store.ts";\nimport type { SandboxRuntime } from "../runtime/types.ts";\n',
    });
    expect(layerViolations(dir)).toHaveLength(2);
  });

  it("refuses a benchmark talking to the engine other than through the runtime or the floor's one exec", () => {
    const dir = tree({
      "bench/scenarios/throughput.ts": 'import Docker from "dockerode";\nimport { floorExec } from "../lib/engine-floor.ts";\n',
      "bench/lib/engine-floor.ts": 'import Docker from "dockerode";\n',
    });
    expect(layerViolations(dir)).toEqual(["bench/scenarios/throughput.ts:1 imports dockerode: only runtime, bench-floor may (bench may not)"]);
  });

  it("refuses the site importing the server, and the browser loading zod through a contract", () => {
    const dir = tree({
      "contracts/workshop-api.ts": 'import { z } from "zod";\nexport const joinSchema = z.object({});\n',
      "contracts/close-codes.ts": "export const CloseCode = { normal: 1000 };\n",
      "sandbox-server/src/grading/grader.ts": "export class Grader {}\n",
      "src/client/workshop/join.ts": [
        'import { joinSchema } from "../../../contracts/workshop-api.ts";',
        'import type { Grader } from "../../../sandbox-server/src/grading/grader.ts";',
        'import { CloseCode } from "../../../contracts/close-codes.ts";',
        'import type { joinSchema as Types } from "../../../contracts/workshop-api.ts";',
      ].join("\n"),
    });
    const problems = layerViolations(dir);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain("src/client/workshop/join.ts:1 imports contracts/workshop-api.ts at run time, which loads zod");
    expect(problems[1]).toContain("grading/grader.ts: client may import only client, site-lib, contracts, not grading");
  });

  it("lets only the runtime import the Docker client", () => {
    const dir = tree({ "sandbox-server/src/preview/port-watcher.ts": 'import Docker from "dockerode";\n' });
    expect(layerViolations(dir)).toEqual(["sandbox-server/src/preview/port-watcher.ts:1 imports dockerode: only runtime, bench-floor may (preview may not)"]);
  });

  it("tells type-only imports from value imports, and ignores imports shown in comments", () => {
    const text = [
      "/** Example: `import dockerfile from \"./Dockerfile?raw\"`. */",
      'import type { A } from "./a.ts";',
      'import { type B, type C } from "./b.ts";',
      'import D, { type E } from "./d.ts";',
      'export { F } from "./f.ts";',
      'const g = await import("./g.ts");',
    ].join("\n");
    expect(importsOf("src/x.ts", text).map((i) => [i.to, i.typeOnly])).toEqual([
      ["src/a.ts", true],
      ["src/b.ts", true],
      ["src/d.ts", false],
      ["src/f.ts", false],
      ["src/g.ts", false],
    ]);
  });
});
