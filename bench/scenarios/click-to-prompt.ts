import { spawn } from "node:child_process";
import { floorExec } from "../lib/engine-floor.ts";
import { waitForPool, type BenchServer } from "../lib/server.ts";
import { now, round, summarize, withTimeout, type Summary } from "../lib/stats.ts";
import { BenchTerminal, endSession, openSession, PROMPT, stripAnsi } from "../lib/terminal.ts";

export interface ClickRun {
  total_ms: number;
  /** POST /api/sessions answered. */
  post_ms: number;
  /** WebSocket open (hello sent right then). */
  open_ms: number;
  /** `ready` message: the shell is attached. */
  ready_ms: number;
}

export interface ClickResult extends Summary {
  runs: ClickRun[];
  /** Medians of the steps, measured from the request. */
  steps_p50_ms: { post: number; open: number; ready: number; prompt: number };
}


/**
 * Browser-side request for a terminal to its prompt: POST /api/sessions (a new browser, so a new
 * sandbox), WebSocket, hello, and the prompt on screen. With a pool, each run waits until the pool
 * is full first, so every run is a pool hit. After a warm run, `floor` (if given) is measured in the
 * same sandbox.
 */
export async function clickToPrompt(
  server: BenchServer,
  options: { runs: number; poolSize: number; afterEach?: (sandboxId: string) => Promise<void> },
): Promise<ClickResult> {
  const runs: ClickRun[] = [];
  for (let i = 0; i < options.runs; i++) {
    if (options.poolSize > 0) await waitForPool(server.url, options.poolSize);
    const t0 = now();
    const session = await openSession(server.url);
    const post = now();
    const term = new BenchTerminal(session);
    try {
      await term.prompt(60_000);
      const done = now();
      runs.push({ total_ms: done - t0, post_ms: post - t0, open_ms: (term.marks.open ?? done) - t0, ready_ms: (term.marks.ready ?? done) - t0 });
      term.close();
      if (options.afterEach) await options.afterEach(server.sandboxOf(session.sessionId));
    } finally {
      term.close();
      await endSession(session);
    }
  }
  const med = (f: (r: ClickRun) => number) => summarize(runs.map(f)).p50_ms;
  return {
    ...summarize(runs.map((r) => r.total_ms)),
    runs: runs.map((r) => ({ total_ms: round(r.total_ms), post_ms: round(r.post_ms), open_ms: round(r.open_ms), ready_ms: round(r.ready_ms) })),
    steps_p50_ms: { post: med((r) => r.post_ms), open: med((r) => r.open_ms), ready: med((r) => r.ready_ms), prompt: med((r) => r.total_ms) },
  };
}

/**
 * The floor through the engine API (what any server must at least do): exec create + start of an
 * interactive bash with a TTY in the sandbox, to its prompt.
 */
export async function floorApi(sandboxId: string): Promise<number> {
  const t0 = now();
  const { stream } = await floorExec(sandboxId, ["bash"], { stdin: true, env: ["TERM=xterm-256color"] });
  let text = "";
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        stream.on("data", (c: Buffer) => {
          text += c.toString("latin1");
          if (PROMPT.test(stripAnsi(text))) resolve();
        });
        stream.once("close", () => reject(new Error(`exec ended before its prompt: ${JSON.stringify(text)}`)));
      }),
      15_000,
      "the floor's prompt (API)",
    );
    return now() - t0;
  } finally {
    stream.end("exit\r");
    stream.destroy();
  }
}

/** The floor as a person would see it: `docker exec -it <sandbox> bash` in a pty (`script`), to its prompt. */
export async function floorCli(sandboxId: string): Promise<number> {
  const t0 = now();
  const child = spawn("script", ["-qfec", `docker exec -it ${sandboxId} bash`, "/dev/null"], { stdio: ["pipe", "pipe", "ignore"] });
  let text = "";
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (c: Buffer) => {
          text += c.toString("latin1");
          if (PROMPT.test(stripAnsi(text))) resolve();
        });
        child.once("exit", () => reject(new Error(`docker exec ended before its prompt: ${JSON.stringify(text)}`)));
      }),
      15_000,
      "the floor's prompt (CLI)",
    );
    return now() - t0;
  } finally {
    child.stdin.end("exit\r");
    setTimeout(() => child.kill("SIGKILL"), 2_000).unref();
  }
}
