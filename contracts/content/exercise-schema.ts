import { z } from "zod";

/**
 * Exercises are data: YAML files in content/exercises/, validated by these schemas both when the
 * site is built and when the server starts. Every field is described, so this file is the
 * reference for authors. Checks judge the sandbox's end state, never the keystrokes.
 */

const imageRef = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._/:@-]{0,199}$/, "an image reference such as greet, greet:1.0 or python:3.11-slim")
  .describe("image name, optionally with :tag");

const containerName = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/, "a container name such as web")
  .describe("container name; leave out to accept any container that matches the other fields");

const port = z.number().int().min(1).max(65535);

const networkName = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/, "a network name such as shop")
  .describe("network name, as in docker network create NAME");

const imagePath = z.string().regex(/^\/[^\0]{0,1023}$/, "an absolute path such as /app/app.py");

const textMatch = z
  .object({
    includes: z.string().optional().describe("passes when the text contains this"),
    matches: z.string().optional().describe("passes when the text matches this regular expression"),
    equals: z.string().optional().describe("passes when the text, trimmed, equals this"),
    ignoreCase: z.boolean().optional().describe("true: upper and lower case count as the same (for values a program reads in any case, such as `warning`)"),
  })
  .strict()
  .refine((m) => m.includes !== undefined || m.matches !== undefined || m.equals !== undefined, "give includes, matches or equals");

export const imageCheckSchema = z
  .object({
    kind: z.literal("image").describe("an image exists in the learner's engine, with this configuration"),
    image: imageRef,
    hasEntrypoint: z.boolean().optional().describe("true: the image must set ENTRYPOINT (exec or shell form)"),
    hasCmd: z.boolean().optional().describe("true: the image must set CMD"),
    env: z
      .record(z.string(), z.union([z.string(), textMatch]))
      .optional()
      .describe("ENV values the image must set: a string is matched exactly; `{ equals: WARNING, ignoreCase: true }` accepts any value the program treats the same"),
    sameAs: imageRef
      .optional()
      .describe("the image must be this very image (the same ID), as `docker tag` makes; an image built FROM it is not"),
    nonRoot: z.boolean().optional().describe("true: the image must set a USER that is not root (neither `root` nor `0`)"),
    hasHealthcheck: z.boolean().optional().describe("true: the image must define a HEALTHCHECK (with a test, not NONE)"),
    exposes: z.array(port).optional().describe("ports the image must EXPOSE"),
    workdir: z.string().optional().describe("the WORKDIR the image must set"),
    historyIncludes: z.array(z.string()).optional().describe("text that must appear in `docker image history` (the instructions that made the layers)"),
    baseImage: imageRef.optional().describe("the image must be built on this one (its layers are a prefix of ours)"),
    maxSizeMb: z.number().positive().optional().describe("the image must be at most this big"),
    hasFiles: z
      .array(imagePath)
      .optional()
      .describe("paths (files or folders) that must exist in the image's file system, e.g. /app/app.py"),
    lacksFiles: z
      .array(imagePath)
      .optional()
      .describe("paths that must not exist in the image, e.g. /app/data kept out by .dockerignore"),
  })
  .strict();

export const runCheckSchema = z
  .object({
    kind: z.literal("run").describe("run the image in a fresh container (no network) and judge its output"),
    image: imageRef,
    args: z.array(z.string()).default([]).describe("arguments after the image name, as a learner would type them"),
    env: z.record(z.string(), z.string()).optional().describe("-e variables for the run"),
    stdout: textMatch.optional().describe("what the output must look like"),
    exitCode: z.number().int().optional().describe("the exit code the run must end with"),
  })
  .strict();

export const containerCheckSchema = z
  .object({
    kind: z.literal("container").describe("a container exists with these properties"),
    name: containerName.optional(),
    image: imageRef.optional().describe("the container must run this image (any tag when none is given)"),
    state: z.enum(["running", "exited", "any"]).default("any").describe("running or exited"),
    exitCode: z.number().int().optional().describe("for an exited container, its exit code"),
    publishes: z
      .array(z.object({ containerPort: port, hostPort: port.optional() }).strict())
      .optional()
      .describe("ports the container must publish (-p hostPort:containerPort)"),
    mounts: z
      .array(
        z
          .object({
            destination: z.string().describe("path inside the container"),
            type: z.enum(["volume", "bind", "any"]).default("any"),
            source: z.string().optional().describe("the volume name, or the host path of a bind mount"),
            readOnly: z.boolean().optional().describe("true: mounted read-only (`:ro`); false: writable"),
          })
          .strict(),
      )
      .optional()
      .describe("mounts the container must have"),
    env: z
      .record(z.string(), z.union([z.string(), textMatch]))
      .optional()
      .describe("environment variables the container must have: a string is matched exactly, or give `{ equals: DEBUG, ignoreCase: true }`"),
    logs: textMatch.optional().describe("what the container's logs must show"),
    autoRemove: z.boolean().optional().describe("true: the container must have been started with --rm"),
    networks: z
      .array(networkName)
      .optional()
      .describe("networks the container must be attached to (docker run --network, docker network connect); it may be on others too"),
    memoryMb: z
      .number()
      .positive()
      .optional()
      .describe("the memory limit the container must have, in MiB as `--memory 32m` means (docker run --memory, docker update)"),
    cpus: z
      .number()
      .positive()
      .optional()
      .describe("the CPU limit the container must have, in CPUs (--cpus 0.5, or the same as --cpu-quota/--cpu-period)"),
    oomKilled: z
      .boolean()
      .optional()
      .describe("true: the container must have been killed for going over its memory limit (OOMKilled in docker inspect)"),
    imagePinned: z
      .boolean()
      .optional()
      .describe("true: the container must have been started from an image pinned by digest (name@sha256:…)"),
    restartPolicy: z
      .enum(["no", "always", "unless-stopped", "on-failure"])
      .optional()
      .describe("the restart policy the container must have (docker run --restart, Compose `restart:`)"),
    health: z
      .enum(["healthy", "unhealthy", "starting"])
      .optional()
      .describe("the health its HEALTHCHECK must report (docker inspect .State.Health.Status)"),
    composeProject: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,127}$/)
      .optional()
      .describe("the container must belong to this Compose project (by default its folder's name)"),
    composeService: z
      .string()
      .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/)
      .optional()
      .describe("the container must belong to this Compose service (any project unless composeProject is given)"),
  })
  .strict();

export const volumeCheckSchema = z
  .object({
    kind: z.literal("volume").describe("a named volume exists, optionally holding a file"),
    name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/).describe("the volume name"),
    file: z.string().regex(/^[^\0]{1,512}$/).optional().describe("a path inside the volume that must exist"),
    content: textMatch.optional().describe("what that file must contain"),
  })
  .strict();

export const fileCheckSchema = z
  .object({
    kind: z.literal("file").describe("a file in the sandbox (the learner's own machine)"),
    path: z.string().regex(/^\/[^\0]{0,1023}$/, "an absolute path").describe("absolute path"),
    content: textMatch.optional().describe("what the file must contain"),
  })
  .strict();

export const httpCheckSchema = z
  .object({
    kind: z.literal("http").describe("an HTTP request to a port published in the sandbox"),
    port: port.describe("the host port in the sandbox (the left side of -p)"),
    path: z.string().startsWith("/").default("/"),
    status: z.number().int().min(100).max(599).default(200).describe("the status the answer must have"),
    body: textMatch.optional().describe("what the answer's body must contain"),
  })
  .strict();

export const networkCheckSchema = z
  .object({
    kind: z.literal("network").describe("a network exists in the learner's engine, optionally with these containers on it"),
    name: networkName,
    driver: z.string().optional().describe("the driver it must use, e.g. bridge"),
    containers: z
      .array(containerName)
      .optional()
      .describe("containers (by name, running or stopped) that must be attached to it"),
    notContainers: z
      .array(containerName)
      .optional()
      .describe("containers that must not be attached to it (for isolation tasks)"),
  })
  .strict();

export const composeCheckSchema = z
  .object({
    kind: z.literal("compose").describe("a Compose project is up: a container for each listed service (docker compose up)"),
    project: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,127}$/)
      .optional()
      .describe("the project name (by default the folder of compose.yaml); leave out to accept any project with these services"),
    services: z.array(z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/)).min(1).describe("service names from compose.yaml"),
    state: z.enum(["running", "any"]).default("running").describe("running: every listed service must have a running container"),
  })
  .strict();

export const absentCheckSchema = z
  .object({
    kind: z.literal("no-containers").describe("no container (running or stopped) matches; for clean-up tasks"),
    image: imageRef.optional(),
    name: containerName.optional(),
    state: z.enum(["running", "any"]).default("any"),
  })
  .strict();

export const removedCheckSchema = z
  .object({
    kind: z
      .literal("removed")
      .describe(
        "the engine's recent events show containers that were removed (docker rm, prune, --rm): evidence that a clean-up happened, which an empty list alone is not. The engine remembers its last 256 events",
      ),
    image: imageRef.optional().describe("only containers of this image count"),
    name: containerName.optional(),
    atLeast: z.number().int().min(1).default(1).describe("how many such removals must be on record"),
  })
  .strict();

export const scriptCheckSchema = z
  .object({
    kind: z
      .literal("script")
      .describe(
        "an author's bash script that passes by exiting 0 (a Killercoda verify.sh). It runs in the grading probe, never in the sandbox: " +
          "the probe's own bash, docker and curl, the sandbox's engine (DOCKER_HOST) and network (localhost is the sandbox), and the " +
          "sandbox's files under $SANDBOX_ROOT (its /root is also the script's working directory and HOME). Its output is kept from the learner.",
      ),
    script: z.string().min(1).max(64 * 1024).describe("the script's text, run with `bash -e`: it passes when it exits 0, so any failing command fails it (a final `echo done` cannot pass it)"),
    timeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(60)
      .default(20)
      .describe("the script fails when it runs longer than this (it is killed)"),
  })
  .strict();

export const checkSchema = z.discriminatedUnion("kind", [
  imageCheckSchema,
  runCheckSchema,
  containerCheckSchema,
  volumeCheckSchema,
  fileCheckSchema,
  httpCheckSchema,
  absentCheckSchema,
  removedCheckSchema,
  networkCheckSchema,
  composeCheckSchema,
  scriptCheckSchema,
]);
export type Check = z.infer<typeof checkSchema>;

export const taskSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9-]{1,48}$/).describe("stable id, used in stored results; do not rename once learners have results"),
    title: z.string().min(3).describe("what the learner must achieve, in one line (Markdown code spans allowed)"),
    check: checkSchema.describe("how the server judges it"),
    failMessage: z.string().optional().describe("what the learner reads when the check fails, instead of the generated sentence"),
    guard: z
      .boolean()
      .optional()
      .describe(
        "true: this task guards against a shortcut by checking that something the lesson gave is still there (the secrets were ignored, not deleted); it passes on a fresh sandbox, so lesson CI does not require it to fail there",
      ),
    hints: z.array(z.string()).default([]).describe("revealed one at a time, gentlest first"),
  })
  .strict();
export type Task = z.infer<typeof taskSchema>;

const taskId = z.string().regex(/^[a-z0-9-]{1,48}$/);

export const wrongAttemptSchema = z
  .object({
    name: z
      .string()
      .min(3)
      .describe("the shortcut in a learner's words, e.g. `a hand-written page instead of the generated one`; lesson CI names it when it passes wrongly"),
    script: z
      .string()
      .min(1)
      .describe("bash run by lesson CI in a fresh sandbox (after `setup` and the lesson's files): the attempt a learner would really make"),
    fails: z
      .array(taskId)
      .optional()
      .describe("tasks that must fail after the attempt (the ones it is meant to catch); left out, at least one task must fail"),
  })
  .strict();
export type WrongAttempt = z.infer<typeof wrongAttemptSchema>;

export const exerciseSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9-]{1,64}$/).describe("stable id; the file name without .yaml"),
    lesson: z.string().describe("slug of the lesson that shows it"),
    title: z.string().min(3),
    description: z.string().optional().describe("the goal in a sentence or two (Markdown)"),
    tasks: z
      .array(taskSchema)
      .min(1)
      .refine((tasks) => tasks.some((t) => !t.guard), "at least one task must not be a guard: an exercise must ask for something new"),
    solution: z
      .string()
      .min(1)
      .describe("reference solution: a bash script run in a fresh sandbox by lesson CI; never sent to browsers"),
    setup: z
      .string()
      .optional()
      .describe(
        "the exercise's starting state: bash run as root in the learner's sandbox when they open the lesson in a sandbox that has not run it " +
          "(once per sandbox, remembered by the server; a new sandbox runs it again), and before lesson CI's fresh-sandbox check",
      ),
    start: z
      .string()
      .min(1)
      .max(1000)
      .optional()
      .describe(
        "a command typed into the learner's `main` terminal right after `setup` ran in their sandbox (an imported scenario's foreground.sh); " +
          "not typed again on a reload, since the setup does not run again",
      ),
    after: z
      .string()
      .regex(/^[a-z0-9-]{1,64}$/)
      .optional()
      .describe("lesson CI only: the id of an exercise whose setup and solution run first, for steps that build on an earlier step (imported scenarios)"),
    wrongAttempts: z
      .array(wrongAttemptSchema)
      .min(1)
      .describe("at least one shortcut a learner would try that must not pass: lesson CI proves fresh sandbox fails, each wrong attempt fails, solution passes"),
  })
  .strict()
  .superRefine((e, ctx) => {
    const seen = new Set<string>();
    e.tasks.forEach((t, i) => {
      if (seen.has(t.id)) ctx.addIssue({ code: "custom", path: ["tasks", i, "id"], message: `task id "${t.id}" is used twice` });
      seen.add(t.id);
    });
    e.wrongAttempts.forEach((w, i) => {
      for (const id of w.fails ?? []) {
        if (!seen.has(id)) ctx.addIssue({ code: "custom", path: ["wrongAttempts", i, "fails"], message: `no task "${id}"; tasks are ${[...seen].join(", ")}` });
      }
    });
  });
export type Exercise = z.infer<typeof exerciseSchema>;

/** What browsers may see: everything but the reference solution and setup. */
export function publicExercise(e: Exercise) {
  return {
    id: e.id,
    lesson: e.lesson,
    title: e.title,
    description: e.description,
    tasks: e.tasks.map((t) => ({ id: t.id, title: t.title, hints: t.hints })),
    /** Whether the page must ask the server to prepare the sandbox (the setup's text stays on the server). */
    hasSetup: e.setup !== undefined,
  };
}
export type PublicExercise = ReturnType<typeof publicExercise>;
