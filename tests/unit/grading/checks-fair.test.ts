import { describe, expect, it } from "vitest";
import { CheckRunner, matches } from "../../../sandbox-server/src/grading/checks.ts";
import { checkSchema, exerciseSchema } from "../../../contracts/content/exercise-schema.ts";
import type { ExecResult, SandboxProbe } from "../../../sandbox-server/src/runtime/types.ts";

/**
 * The checks that keep exercises fair: an image that is the same image (not one built on it), a
 * default in any case the program accepts, a non-root USER and a HEALTHCHECK, a restart policy
 * and a health state, and evidence that containers were removed (not just that none are left).
 * Judged against a fake probe that answers the docker commands the checks run.
 */

const ok = (stdout: string): ExecResult => ({ exitCode: 0, stdout, stderr: "", timedOut: false, truncated: false });
const notFound: ExecResult = { exitCode: 1, stdout: "", stderr: "Error: No such object", timedOut: false, truncated: false };

interface Img {
  Id: string;
  Config?: Record<string, unknown>;
}

interface World {
  images?: Record<string, Img>;
  containers?: Array<Record<string, unknown>>;
  /** Lines `docker events --format '{{json .Actor.Attributes}}'` prints, for the filters it was given. */
  events?: (args: string[]) => string[];
}

function probe(world: World, calls: string[][] = []): SandboxProbe {
  return {
    async exec(cmd: string[]): Promise<ExecResult> {
      calls.push(cmd);
      const [tool, ...args] = cmd;
      if (tool !== "docker") return notFound;
      if (args[0] === "image" && args[1] === "inspect") {
        const img = world.images?.[args[2]!];
        return img ? ok(JSON.stringify([{ Size: 1e6, Config: {}, ...img }])) : notFound;
      }
      if (args.join(" ") === "ps -aq --no-trunc") return ok((world.containers ?? []).map((c) => c.Id).join("\n"));
      if (args[0] === "inspect") return ok(JSON.stringify(world.containers ?? []));
      if (args[0] === "events") return ok((world.events?.(args) ?? []).join("\n"));
      return notFound;
    },
    async readFile(): Promise<undefined> {
      return undefined; // these checks read no files
    },
    authorScript: () => Promise.reject(new Error("no script checks here")),
    async close() {},
  };
}

const judge = (world: World, check: unknown, calls?: string[][]) => new CheckRunner(probe(world, calls)).run(checkSchema.parse(check));

const id = (n: string) => `sha256:${n.repeat(64)}`;

describe("image sameAs: a second name, not a second image", () => {
  const world: World = {
    images: { "nginx:1.22": { Id: id("a") }, "my-nginx:stable": { Id: id("a") }, "built-on:nginx": { Id: id("b") } },
  };

  it("passes for docker tag's result, which is the same image", async () => {
    expect((await judge(world, { kind: "image", image: "my-nginx:stable", sameAs: "nginx:1.22" })).passed).toBe(true);
  });

  it("fails for an image built FROM it, and says to use docker tag", async () => {
    const v = await judge(world, { kind: "image", image: "built-on:nginx", sameAs: "nginx:1.22" });
    expect(v.passed).toBe(false);
    expect(v.message).toBe("`built-on:nginx` is a different image from `nginx:1.22` (another IMAGE ID); give `nginx:1.22` the new name with docker tag.");
  });
});

describe("image env in any case the program accepts", () => {
  const world = (level: string): World => ({ images: { worker: { Id: id("c"), Config: { Env: [`LOG_LEVEL=${level}`] } } } });
  const check = { kind: "image", image: "worker", env: { LOG_LEVEL: { equals: "WARNING", ignoreCase: true } } };

  it("accepts warning, Warning and WARNING, and still refuses another level", async () => {
    for (const level of ["warning", "Warning", "WARNING"]) expect((await judge(world(level), check)).passed).toBe(true);
    expect((await judge(world("INFO"), check)).message).toBe('The image `worker` sets LOG_LEVEL=INFO, but it should be LOG_LEVEL="WARNING".');
  });

  it("keeps exact matching for a plain string", async () => {
    expect((await judge(world("warning"), { kind: "image", image: "worker", env: { LOG_LEVEL: "WARNING" } })).passed).toBe(false);
  });

  it("folds case in includes and matches too, only when asked", () => {
    expect(matches("Hello World", { includes: "hello", ignoreCase: true })).toBe(true);
    expect(matches("Hello World", { includes: "hello" })).toBe(false);
    expect(matches("Hello World", { matches: "^hello", ignoreCase: true })).toBe(true);
  });
});

describe("image habits: non-root USER and HEALTHCHECK", () => {
  const img = (Config: Record<string, unknown>): World => ({ images: { app: { Id: id("d"), Config } } });

  it("refuses root however it is written, and accepts a named or numeric user", async () => {
    for (const User of [undefined, "", "root", "0", "0:0"]) {
      const v = await judge(img({ User }), { kind: "image", image: "app", nonRoot: true });
      expect(v.message, `USER ${String(User)}`).toBe("The image `app` runs as root; add a USER line with an ordinary user.");
    }
    for (const User of ["app", "1000", "1000:1000"]) expect((await judge(img({ User }), { kind: "image", image: "app", nonRoot: true })).passed).toBe(true);
  });

  it("needs a HEALTHCHECK with a test; HEALTHCHECK NONE does not count", async () => {
    const check = { kind: "image", image: "app", hasHealthcheck: true };
    expect((await judge(img({ Healthcheck: { Test: ["CMD", "true"] } }), check)).passed).toBe(true);
    expect((await judge(img({ Healthcheck: { Test: ["NONE"] } }), check)).message).toBe("The image `app` has no HEALTHCHECK.");
    expect((await judge(img({}), check)).message).toBe("The image `app` has no HEALTHCHECK.");
  });
});

describe("container restart policy and health", () => {
  const ct = (HostConfig: object, State: object = {}) => ({
    Id: "e".repeat(64),
    Name: "/notes",
    Image: id("e"),
    Config: { Image: "notes-api", Env: [], Labels: {} },
    State: { Status: "running", Running: true, ExitCode: 0, ...State },
    HostConfig,
  });

  it("reads --restart, and counts a missing policy as no", async () => {
    const check = { kind: "container", name: "notes", restartPolicy: "unless-stopped" };
    expect((await judge({ containers: [ct({ RestartPolicy: { Name: "unless-stopped" } })] }, check)).passed).toBe(true);
    expect((await judge({ containers: [ct({ RestartPolicy: { Name: "" } })] }, check)).message).toBe(
      "The container `notes` has the restart policy `no`, not `unless-stopped` (--restart unless-stopped).",
    );
  });

  it("tells healthy from starting and from no health check at all", async () => {
    const check = { kind: "container", name: "notes", health: "healthy" };
    expect((await judge({ containers: [ct({}, { Health: { Status: "healthy" } })] }, check)).passed).toBe(true);
    expect((await judge({ containers: [ct({}, { Health: { Status: "starting" } })] }, check)).message).toBe(
      "The health check of `notes` has not answered yet (starting); wait for its first interval and check again.",
    );
    expect((await judge({ containers: [ct({})] }, check)).message).toBe("The container `notes` has no health check, so it reports no health.");
  });
});

describe("removed: evidence of a clean-up", () => {
  const destroyed = (image: string, grading = false) => JSON.stringify({ image, name: "x", ...(grading ? { "org.shipshape.grading": "run" } : {}) });

  it("fails when nothing was ever removed, which an empty container list cannot tell", async () => {
    const v = await judge({ events: () => [] }, { kind: "removed", image: "hello-world" });
    expect(v.passed).toBe(false);
    expect(v.message).toBe("No container from `hello-world` has been removed yet, so there was nothing to tidy. Make some first, then remove them.");
  });

  it("asks the engine for destroy events of that image, up to now, and counts them", async () => {
    const calls: string[][] = [];
    const world: World = { events: () => [destroyed("hello-world"), destroyed("hello-world")] };
    expect((await judge(world, { kind: "removed", image: "hello-world", atLeast: 2 }, calls)).passed).toBe(true);
    const args = calls.find((c) => c[1] === "events")!;
    expect(args).toContain("event=destroy");
    expect(args).toContain("image=hello-world");
    expect(args).toContain("--until");
    expect((await judge(world, { kind: "removed", image: "hello-world", atLeast: 3 })).message).toBe(
      "Only 2 containers from `hello-world` removed; at least 3 should be.",
    );
  });

  it("does not count the containers grading itself ran and removed", async () => {
    const world: World = { events: () => [destroyed("hello-world", true)] };
    expect((await judge(world, { kind: "removed", image: "hello-world" })).passed).toBe(false);
  });
});

describe("wrong attempts in the exercise schema", () => {
  const base = {
    id: "x",
    lesson: "l",
    title: "An exercise",
    tasks: [{ id: "t", title: "A task", check: { kind: "file", path: "/x" } }],
    solution: "touch /x",
  };

  it("requires at least one, so every exercise is proven against a shortcut", () => {
    const r = exerciseSchema.safeParse(base);
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toContain("wrongAttempts");
  });

  it("refuses a wrong attempt that names a task the exercise does not have", () => {
    const r = exerciseSchema.safeParse({ ...base, wrongAttempts: [{ name: "nothing", script: "true", fails: ["nope"] }] });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toBe('no task "nope"; tasks are t');
  });
});
