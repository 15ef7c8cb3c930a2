import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseExercise } from "../../../sandbox-server/src/content/exercise-loader.ts";
import {
  convertScenario,
  detailsHints,
  execBlocks,
  imagesNotMirrored,
  markdownToMdx,
  probePaths,
} from "../../../sandbox-server/src/content/killercoda/convert.ts";
import { readScenario } from "../../../sandbox-server/src/content/killercoda/scenario.ts";
import { importScenario, mirroredImages } from "../../../sandbox-server/src/import-cli.ts";
import { repoRoot } from "../../support/server.ts";

const fixtures = path.join(repoRoot, "tests/fixtures/killercoda");
const available = mirroredImages();
const tmp = mkdtempSync(path.join(tmpdir(), "shipshape-import-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("Killercoda markdown to MDX", () => {
  it("turns {{exec}} blocks into Run buttons and {{copy}} blocks into plain code blocks", () => {
    const mdx = markdownToMdx("Run it:\n\n```\ndocker ps --format '{{.Names}}'\n```{{exec}}\n\nCopy:\n\n```\nls\n```{{copy}}\n", [], "t");
    expect(mdx).toContain(`<Run cmd={"docker ps --format '{{.Names}}'"} />`);
    expect(mdx).toContain("```\nls\n```");
    expect(mdx).not.toContain("{{copy}}");
  });

  it("keeps interrupt, inline exec and <details> hints", () => {
    const mdx = markdownToMdx("Stop: `docker logs -f web`{{exec interrupt}}\n\n<details><summary>Hint</summary>Use -d</details>", [], "t");
    expect(mdx).toContain(`<Run interrupt cmd={"docker logs -f web"} />`);
    expect(mdx).toMatch(/<details>\s*<summary>Hint<\/summary>\s+Use -d\s+<\/details>/);
  });

  it("escapes what MDX would read as code, and closes void tags", () => {
    const mdx = markdownToMdx("A {value} and a < b, <br> and <foo>\n\n`{kept}`", [], "t");
    expect(mdx).toContain("A \\{value\\} and a &lt; b, <br /> and &lt;foo>");
    expect(mdx).toContain("`{kept}`");
  });

  it("takes the step's exec commands as its reference solution and <details> as hints", () => {
    const text = readFileSync(path.join(fixtures, "first-web-server/step1/text.md"), "utf8");
    expect(execBlocks(text)).toEqual(["docker run -d --name web -p 8080:80 nginx", "curl -s localhost:8080"]);
    expect(detailsHints(text)).toEqual(["Hint: `-d` runs it in the background and `-p 8080:80` publishes the port."]);
  });

  it("points /root paths of a verify script at the sandbox's files, and leaves other paths alone", () => {
    expect(probePaths('grep -q x /root/a.txt && test -d "/root"\ndocker exec web cat /etc/hosts')).toBe(
      'grep -q x $SANDBOX_ROOT/root/a.txt && test -d "$SANDBOX_ROOT/root"\ndocker exec web cat /etc/hosts',
    );
  });
});

describe("images the offline mirror has", () => {
  const t = (text: string) => [{ where: "step 1", text }];
  it("accepts mirrored images, locally built ones and build stages", () => {
    const text = "docker run -d -p 80:80 --name web nginx:1.22\ndocker build -t app .\ndocker run --rm app\nFROM python:3.11-slim AS build\nFROM build\n";
    expect(imagesNotMirrored(t(text), available)).toEqual([]);
  });
  it("names an image that is not there, and a tag that is not", () => {
    const missing = imagesNotMirrored(t("docker run -it --rm alpine sh\ndocker pull nginx:1.25\n  image: postgres:16"), available).map((m) => m.ref);
    expect(missing).toEqual(["alpine", "nginx:1.25", "postgres:16"]);
  });
});

describe("importing the fixture scenarios", () => {
  it("imports exec steps: one exercise per verify.sh, a script check, Run buttons in the lesson", () => {
    const result = importScenario({ folder: path.join(fixtures, "first-web-server"), contentDir: tmp, available });
    expect(result.refusals).toEqual([]);
    expect(result.exercises.map((e) => e.id)).toEqual(["first-web-server-step1", "first-web-server-step2"]);
    const step2 = parseExercise(readFileSync(path.join(tmp, "exercises/first-web-server-step2.yaml"), "utf8"), "step2.yaml");
    expect(step2.after).toBe("first-web-server-step1");
    expect(step2.tasks[0]!.check).toMatchObject({ kind: "script", script: expect.stringContaining('"hello from step 2" $SANDBOX_ROOT/root/greeting.txt') });
    expect(step2.solution).toBe('echo "hello from step 2" > /root/greeting.txt');
    const lesson = readFileSync(path.join(tmp, "lessons/first-web-server.mdx"), "utf8");
    expect(lesson).toMatch(/^---\ntitle: First web server\n/);
    expect(lesson).toContain("## Step 2: Leave a note in greeting.txt");
    expect(lesson).toContain('<Exercise id="first-web-server-step1" />');
  });

  it("imports assets and init scripts as the first step's setup, placed at their targets", () => {
    const result = importScenario({ folder: path.join(fixtures, "build-from-assets"), contentDir: tmp, slug: "from-assets", available });
    expect(result.refusals).toEqual([]);
    const [step1, step2] = result.exercises.map((e) => e.exercise);
    expect(step1!.setup).toContain("base64 -d > /root/app/Dockerfile");
    expect(step1!.setup).toContain("chmod +x /root/solution.sh");
    expect(step1!.setup).toContain("docker run -d --name old busybox sleep 3600");
    expect(step1!.start).toBe("bash /root/.scenario/foreground.sh");
    expect(step2!.setup).toBeUndefined();
    expect(step2!.start).toBeUndefined();
    expect(result.lesson).toContain(`<Run cmd={"bash /root/.scenario/foreground.sh"} />`);
  });

  it("refuses a scenario that needs a second host, with the reason, and writes nothing", () => {
    const out = mkdtempSync(path.join(tmp, "refused-"));
    const result = importScenario({ folder: path.join(fixtures, "two-hosts"), contentDir: out, available });
    expect(result.refusals).toEqual([expect.stringMatching(/host02\. A shipshape sandbox is a single machine/)]);
    expect(result.written).toEqual([]);
  });

  it("refuses a Kubernetes backend and images the mirror lacks", () => {
    const scenario = readScenario(path.join(fixtures, "first-web-server"));
    scenario.imageId = "kubernetes-kubeadm-2nodes";
    scenario.steps[0]!.text += "\n```\ndocker run -d redis:6\n```{{exec}}\n";
    const { refusals } = convertScenario(scenario, { slug: "k", available });
    expect(refusals[0]).toMatch(/Kubernetes backend \(backend.imageid "kubernetes-kubeadm-2nodes"\)/);
    expect(refusals[1]).toMatch(/image redis:6 \(step 1\), which the offline registry mirror does not have \(it has redis with tags latest, 7, 7.0\)/);
  });

  it("refuses to overwrite files unless told to", () => {
    expect(() => importScenario({ folder: path.join(fixtures, "first-web-server"), contentDir: tmp, available })).toThrow(/exist already.*--force/);
  });
});
