import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repoRoot = path.resolve(import.meta.dirname, "../../..");

/**
 * A minimal site that uses the real lesson collection (src/lib/lesson-loader.ts and the schema)
 * with one broken lesson, built by the real `astro build`: what an author sees.
 */
function buildFixture(lessonSource: string) {
  const root = mkdtempSync(path.join(tmpdir(), "shipshape-site-fixture-"));
  symlinkSync(path.join(repoRoot, "node_modules"), path.join(root, "node_modules"), "dir");
  writeFileSync(path.join(root, "package.json"), JSON.stringify({ type: "module", private: true }));
  writeFileSync(
    path.join(root, "astro.config.mjs"),
    `import { defineConfig } from "astro/config";\nimport mdx from "@astrojs/mdx";\nexport default defineConfig({ integrations: [mdx()], telemetry: false });\n`,
  );
  mkdirSync(path.join(root, "src/pages"), { recursive: true });
  writeFileSync(
    path.join(root, "src/content.config.ts"),
    `import { defineCollection } from "astro:content";
import { lessonLoader } from ${JSON.stringify(path.join(repoRoot, "src/lib/lesson-loader.ts"))};
import { lessonSchema } from ${JSON.stringify(path.join(repoRoot, "src/schemas/lesson.ts"))};
export const collections = { lessons: defineCollection({ loader: lessonLoader({ base: "./content/lessons" }), schema: lessonSchema }) };
`,
  );
  writeFileSync(
    path.join(root, "src/pages/index.astro"),
    `---\nimport { getCollection } from "astro:content";\nconst lessons = await getCollection("lessons");\n---\n<p>{lessons.length}</p>\n`,
  );
  mkdirSync(path.join(root, "content/lessons"), { recursive: true });
  writeFileSync(path.join(root, "content/lessons/broken-lesson.mdx"), lessonSource);
  const result = spawnSync(process.execPath, [path.join(repoRoot, "node_modules/astro/bin/astro.mjs"), "build"], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, ASTRO_TELEMETRY_DISABLED: "1", NO_COLOR: "1", FORCE_COLOR: "0" },
    timeout: 90_000,
  });
  return { root, status: result.status, output: `${result.stdout}\n${result.stderr}` };
}

describe("astro build with a broken lesson frontmatter", () => {
  let build: ReturnType<typeof buildFixture>;

  beforeAll(() => {
    build = buildFixture(`---
title: Broken on purpose
summary: A lesson whose frontmatter has mistakes an author makes.
order: 3
durration: 10
objectives: [Notice the error]
---

Body.
`);
  }, 120_000);

  afterAll(() => {
    if (build?.root) rmSync(build.root, { recursive: true, force: true });
  });

  it("fails", () => {
    expect(build.status).not.toBe(0);
  });

  it("names the file and the line of the first bad field", () => {
    expect(build.output).toContain("content/lessons/broken-lesson.mdx:5:1");
  });

  it("names each bad field with the fix", () => {
    expect(build.output).toMatch(/durration.*did you mean `duration`\?/);
    expect(build.output).toMatch(/duration.*is missing\. Add it to the frontmatter, e\.g\. `duration: 15`/);
  });

  it("points to the authoring reference", () => {
    expect(build.output).toContain("src/schemas/lesson.ts");
  });
});
