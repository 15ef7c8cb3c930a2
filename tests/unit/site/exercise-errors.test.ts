import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repoRoot = path.resolve(import.meta.dirname, "../../..");
const at = (file: string) => JSON.stringify(path.join(repoRoot, file));

const goodExercise = `id: run-hello
lesson: demo
title: Say hello
tasks:
  - id: ran
    title: A container from hello-world ran
    check: { kind: container, image: hello-world, state: exited }
solution: docker run hello-world
wrongAttempts:
  - { name: run with --rm, script: docker run --rm hello-world }
`;

/**
 * A minimal site with the real exercises collection (the grader's schema and the site's loader)
 * and the real <Exercise> component, built by the real `astro build`: what an author sees when an
 * exercise is wrong or a lesson names one that does not exist.
 */
function buildFixture(files: Record<string, string>) {
  const root = mkdtempSync(path.join(tmpdir(), "shipshape-exercise-fixture-"));
  symlinkSync(path.join(repoRoot, "node_modules"), path.join(root, "node_modules"), "dir");
  const all: Record<string, string> = {
    "package.json": JSON.stringify({ type: "module", private: true }),
    "astro.config.mjs": `import { defineConfig } from "astro/config";\nexport default defineConfig({ telemetry: false });\n`,
    "src/content.config.ts": `import { defineCollection } from "astro:content";
import { exerciseSchema, publicExercise } from ${at("contracts/content/exercise-schema.ts")};
import { EXERCISE_HINT, yamlFolderLoader } from ${at("src/lib/grading-loaders.ts")};
export const collections = {
  exercises: defineCollection({
    loader: yamlFolderLoader({ base: "./content/exercises", what: "exercise", hint: EXERCISE_HINT }),
    schema: exerciseSchema.transform(publicExercise),
  }),
};
`,
    // Astro compiles .astro files only inside the project: the real component, with what it imports.
    ...Object.fromEntries(
      ["src/user-components/Exercise.astro", "src/lib/code-text.ts", "src/client/exercises/exercise.ts", "src/client/progress/graded-progress.ts"].map((f) => [
        f,
        readFileSync(path.join(repoRoot, f), "utf8"),
      ]),
    ),
    ...files,
  };
  for (const [file, text] of Object.entries(all)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text);
  }
  const result = spawnSync(process.execPath, [path.join(repoRoot, "node_modules/astro/bin/astro.mjs"), "build"], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, ASTRO_TELEMETRY_DISABLED: "1", NO_COLOR: "1", FORCE_COLOR: "0" },
    timeout: 150_000,
  });
  return { root, status: result.status, output: `${result.stdout}\n${result.stderr}` };
}

describe("astro build with a lesson that shows an unknown exercise", () => {
  let build: ReturnType<typeof buildFixture>;

  beforeAll(() => {
    build = buildFixture({
      "content/exercises/run-hello.yaml": goodExercise,
      "src/pages/lessons/demo.astro": `---\nimport Exercise from "../../user-components/Exercise.astro";\n---\n<Exercise id="run-helo" />\n`,
    });
  }, 180_000);

  afterAll(() => {
    if (build?.root && !process.env.KEEP) rmSync(build.root, { recursive: true, force: true });
  });

  it("fails, naming the lesson file and the missing id", () => {
    expect(build.status).not.toBe(0);
    expect(build.output).toContain('<Exercise id="run-helo"> in content/lessons/demo.mdx: there is no exercise "run-helo".');
  });

  it("says how to fix it: the file to create, where the fields are described, and the ids that exist", () => {
    expect(build.output).toContain("Create content/exercises/run-helo.yaml");
    expect(build.output).toContain("contracts/content/exercise-schema.ts");
    expect(build.output).toMatch(/or use one of: run-hello/);
  });
});

describe("astro build with a broken exercise file", () => {
  let build: ReturnType<typeof buildFixture>;

  beforeAll(() => {
    build = buildFixture({
      "content/exercises/run-hello.yaml": goodExercise.replace("kind: container", "kind: containr"),
      "src/pages/index.astro": `---\nimport { getCollection } from "astro:content";\nconst all = await getCollection("exercises");\n---\n<p>{all.length}</p>\n`,
    });
  }, 180_000);

  afterAll(() => {
    if (build?.root && !process.env.KEEP) rmSync(build.root, { recursive: true, force: true });
  });

  it("fails, naming the file, the field, and the schema that describes it", () => {
    expect(build.status).not.toBe(0);
    expect(build.output).toContain("run-hello");
    expect(build.output).toMatch(/tasks\.0\.check\.kind/);
    expect(build.output).toContain("Fix the field(s) listed above in content/exercises/run-hello.yaml");
    expect(build.output).toContain("contracts/content/exercise-schema.ts");
  });
});
