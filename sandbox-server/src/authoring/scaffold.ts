import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

/**
 * `./shipshape new lesson <slug>` and `./shipshape new exercise <id> --lesson <slug>`: files a new
 * lesson starts from, already complete enough that lesson CI proves them (fresh fails, a wrong
 * attempt fails, the solution passes, the clean-up leaves nothing), so an author changes working
 * content instead of filling in a blank page.
 */

export class ScaffoldError extends Error {}

/** Lesson slugs and exercise ids as the site and the schema accept them. */
const slugPattern = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

export interface Written {
  files: string[];
  next: string[];
}

function checkSlug(kind: string, slug: string | undefined): string {
  if (!slug || !slugPattern.test(slug) || slug.length > 60) {
    throw new ScaffoldError(`Name the ${kind} with lowercase letters, digits and dashes, such as "multi-stage-builds" (got ${JSON.stringify(slug ?? "")}).`);
  }
  return slug;
}

function writeNew(file: string, text: string): void {
  if (existsSync(file)) throw new ScaffoldError(`${file} already exists; choose another name or edit that file.`);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
}

/** The next free `order`: after every lesson there is, so the new one shows up at the end of the outline. */
function nextOrder(lessonsDir: string): number {
  let max = 0;
  for (const f of readdirSync(lessonsDir)) {
    if (!f.endsWith(".mdx")) continue;
    const m = /^order:\s*(\d+)/m.exec(readFileSync(path.join(lessonsDir, f), "utf8"));
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max + 1;
}

function titleOf(slug: string): string {
  const words = slug.split("-").join(" ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function exerciseYaml(id: string, lesson: string): string {
  // Names carry the exercise id: one sandbox serves the whole course, so names must not collide.
  const name = `${id}-box`;
  return `id: ${id}
lesson: ${lesson}
title: Keep a container running
description: >
  Start a \`busybox\` container named \`${name}\` that keeps running in the background.
  (Replace this exercise with yours: the fields are described in contracts/content/exercise-schema.ts.)
tasks:
  - id: running
    title: A container named \`${name}\`, from \`busybox\`, runs in the background
    check: { kind: container, name: ${name}, image: busybox, state: running }
    hints:
      - "\`-d\` runs a container in the background, \`--name\` names it, and \`sleep 3600\` keeps busybox busy."
      - "docker run -d --name ${name} busybox sleep 3600"
solution: |
  docker run -d --name ${name} busybox sleep 3600
wrongAttempts:
  - name: in the foreground, so it has already exited when Check looks
    script: docker run --name ${name} busybox true
    fails: [running]
`;
}

export function lessonMdx(slug: string, order: number, exerciseId: string): string {
  return `---
title: ${titleOf(slug)}
summary: One or two sentences that say what the learner can do after this lesson.
order: ${order}
duration: 20
objectives:
  - Run a container in the background and check on it
exercises: [${exerciseId}]
terminals: [main]
---

Start with why the learner needs this, in a sentence or two. Every command in a \`<Run>\` block can
be pressed into the terminal beside the text (the schema of this page's frontmatter is described in
src/schemas/lesson.ts; components in docs/authoring.md).

## Try it

<Run>docker run -d --name ${slug}-demo busybox sleep 3600</Run>

<Run>docker ps</Run>

## Your turn

<Exercise id="${exerciseId}" />

## Clean up

Every lesson ends here: remove what it started, so the next lesson begins with a clear sandbox.

<Run>docker rm -f ${slug}-demo ${exerciseId}-box</Run>

<Run>docker ps -a</Run>
`;
}

export function newLesson(contentDir: string, slugArg: string | undefined): Written {
  const slug = checkSlug("lesson", slugArg);
  const exerciseId = `${slug}-first`;
  const lessonFile = path.join(contentDir, "lessons", `${slug}.mdx`);
  const exerciseFile = path.join(contentDir, "exercises", `${exerciseId}.yaml`);
  if (existsSync(exerciseFile)) throw new ScaffoldError(`${exerciseFile} already exists; choose another lesson name.`);
  writeNew(lessonFile, lessonMdx(slug, nextOrder(path.join(contentDir, "lessons")), exerciseId));
  writeNew(exerciseFile, exerciseYaml(exerciseId, slug));
  return {
    files: [lessonFile, exerciseFile],
    next: [`npm run dev                 # see it at http://localhost:4322/lessons/${slug}/`, `npm run lesson-ci -- ${slug}   # prove its exercises and its clean-up`],
  };
}

export function newExercise(contentDir: string, idArg: string | undefined, lessonArg: string | undefined): Written {
  const id = checkSlug("exercise", idArg);
  const lesson = checkSlug("lesson (--lesson <slug>)", lessonArg);
  const lessonFile = path.join(contentDir, "lessons", `${lesson}.mdx`);
  if (!existsSync(lessonFile)) throw new ScaffoldError(`There is no lesson ${lessonFile}; create it first: ./shipshape new lesson ${lesson}`);
  const exerciseFile = path.join(contentDir, "exercises", `${id}.yaml`);
  writeNew(exerciseFile, exerciseYaml(id, lesson));
  return {
    files: [exerciseFile],
    next: [
      `add ${id} to the exercises: list in ${lessonFile}, and <Exercise id="${id}" /> where it belongs`,
      `add docker rm -f ${id}-box to the lesson's "## Clean up"`,
      `npm run lesson-ci -- ${lesson}`,
    ],
  };
}
