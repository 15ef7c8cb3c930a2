import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";

/**
 * `npm run dev`, for lesson authors: the sandbox server (exercises and quizzes reloaded on change)
 * and `astro dev` with hot reload beside it, in one terminal. Pages are on http://localhost:4322;
 * astro's dev server passes /api and /ws to the sandbox server (astro.config.mjs).
 */
const root = path.resolve(import.meta.dirname, "../..");
const serverPort = process.env.PORT ?? "4321";
const sitePort = process.env.SHIPSHAPE_DEV_PORT ?? "4322";

if (!existsSync(path.join(root, ".data", "sandbox-image"))) {
  process.stderr.write("The sandbox image is not built yet. Run the set-up once, then npm run dev again:\n    ./shipshape setup\n");
  process.exit(1);
}

const children: ChildProcess[] = [];
function run(name: string, command: string, args: string[], env: Record<string, string>): void {
  const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const prefix = (chunk: Buffer) =>
    chunk
      .toString()
      .split("\n")
      .filter((line) => line.length > 0)
      .map((line) => `[${name}] ${line}\n`)
      .join("");
  child.stdout?.on("data", (d: Buffer) => process.stdout.write(prefix(d)));
  child.stderr?.on("data", (d: Buffer) => process.stderr.write(prefix(d)));
  child.on("exit", (code) => {
    process.stderr.write(`[${name}] exited (${code ?? "signal"}); stopping the other one\n`);
    stop(code ?? 1);
  });
  children.push(child);
}

let stopping = false;
function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  setTimeout(() => process.exit(code), 2_000).unref();
}
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));

run("server", process.execPath, ["sandbox-server/src/main.ts"], {
  PORT: serverPort,
  SHIPSHAPE_WATCH_CONTENT: "1",
  // The pages come from astro dev's origin; its proxy keeps that Host.
  SHIPSHAPE_ALLOWED_ORIGINS: [process.env.SHIPSHAPE_ALLOWED_ORIGINS, `http://localhost:${sitePort}`].filter(Boolean).join(","),
});
run("site", process.execPath, ["node_modules/astro/bin/astro.mjs", "dev", "--port", sitePort], {
  SHIPSHAPE_SERVER: `http://127.0.0.1:${serverPort}`,
});
process.stdout.write(`\n  Lessons with hot reload: http://localhost:${sitePort}/  (sandbox server on port ${serverPort})\n\n`);
