import { removeRunLeftovers } from "./namespaces.ts";

/** Gives this run an id for its label namespaces (see namespaces.ts). */
export function setup(): void {
  process.env.SHIPSHAPE_TEST_RUN ??= Math.random().toString(36).slice(2, 7);
}

/**
 * Removes what the run's tests left in the engine. Twice, a few seconds apart: a sandbox whose
 * creation was under way when its server closed appears only when the engine finishes it.
 */
export async function teardown(): Promise<void> {
  const run = process.env.SHIPSHAPE_TEST_RUN ?? "";
  let found = removeRunLeftovers(run);
  await new Promise((r) => setTimeout(r, 5_000));
  found += removeRunLeftovers(run);
  if (found > 0) process.stderr.write(`[teardown] removed ${found} sandbox container(s) the tests left behind\n`);
}
