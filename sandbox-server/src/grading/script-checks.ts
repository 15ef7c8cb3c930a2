import type { Check } from "../../../contracts/content/exercise-schema.ts";
import type { CheckProbe } from "./check-probe.ts";
import { fail, pass, type Verdict } from "./check-shared.ts";

/** A verify script's output is only read for the exit code; 64 KiB keeps a chatty script cheap. */
const SCRIPT_OUTPUT_LIMIT = 64 * 1024;

/**
 * An author's script (a Killercoda verify.sh), run in the probe with the probe's own tools, so a
 * learner who replaces docker or grep in their sandbox cannot make it pass. The sandbox's files
 * are reached through $SANDBOX_ROOT, its engine through DOCKER_HOST and its ports on localhost;
 * the runtime provides all three (authorScript). `timeout -s KILL` bounds the whole process
 * group's time even when the script ignores signals; the output is bounded and never shown, since
 * it may echo learner-controlled text or the answer. `bash -e`: a verify.sh that ends in
 * `echo done` must not pass because its last line did (no pipefail: `docker ps | grep -q x`
 * would fail on docker's SIGPIPE).
 */
export async function scriptCheck(p: CheckProbe, c: Extract<Check, { kind: "script" }>): Promise<Verdict> {
  const r = await p.probe.authorScript(
    ["bash", "-c", 'cd "$HOME" 2>/dev/null || cd /; exec timeout -s KILL "$1" bash -e -c "$2" verify', "script-check", String(c.timeoutSeconds), c.script],
    {
      timeoutMs: c.timeoutSeconds * 1000 + 5_000,
      maxOutputBytes: SCRIPT_OUTPUT_LIMIT,
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    },
  );
  if (r.timedOut || r.exitCode === 137) return fail(`The check did not finish within ${c.timeoutSeconds} s, so it does not pass yet.`);
  if (r.exitCode === 0) return pass("Done.");
  return fail("Not done yet.");
}
