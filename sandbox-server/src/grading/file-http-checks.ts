import type { Check } from "../../../contracts/content/exercise-schema.ts";
import type { CheckProbe } from "./check-probe.ts";
import { describeMatch, fail, matches, pass, READ_LIMIT, type Verdict } from "./check-shared.ts";

/** File and HTTP checks: what the sandbox holds on disk and answers on a port. */

export async function fileCheck(p: CheckProbe, c: Extract<Check, { kind: "file" }>): Promise<Verdict> {
  const content = await p.readSandboxFile(c.path);
  if (content === undefined) return fail(`There is no file ${c.path} yet.`);
  if (c.content && !matches(content, c.content)) return fail(`The file ${c.path} does not contain ${describeMatch(c.content)}.`);
  return pass(`The file ${c.path} is there.`);
}

export async function httpCheck(p: CheckProbe, c: Extract<Check, { kind: "http" }>): Promise<Verdict> {
  const url = `http://127.0.0.1:${c.port}${c.path}`;
  const r = await p.probe.exec(["curl", "-sS", "-m", "5", "--max-filesize", String(READ_LIMIT), "-w", "\n%{http_code}", url], {
    timeoutMs: 10_000,
    maxOutputBytes: READ_LIMIT + 16,
  });
  if (r.exitCode !== 0) return fail(`Nothing answers on port ${c.port} in your sandbox yet (publish it with -p ${c.port}:…).`);
  const nl = r.stdout.lastIndexOf("\n");
  const status = Number.parseInt(r.stdout.slice(nl + 1), 10);
  const body = r.stdout.slice(0, Math.max(0, nl));
  if (status !== c.status) return fail(`Port ${c.port} answered ${c.path} with status ${status}, expected ${c.status}.`);
  if (c.body && !matches(body, c.body)) return fail(`Port ${c.port} answers, but the page does not show ${describeMatch(c.body)}.`);
  return pass(`Port ${c.port} answers as expected.`);
}
