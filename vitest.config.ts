import { defineConfig } from "vitest/config";

// One project per layer: unit (no Docker), integration (real Docker engine), security (attacks,
// faults and fuzzing against the real engine), scaleout (servers sharing Postgres), browser (Chromium).
const SECURITY_ALONE = ["tests/security/attacks.test.ts", "tests/security/network.test.ts"];

export default defineConfig({
  test: {
    // Names this run's label namespaces, and removes what its tests left in the engine at the end.
    globalSetup: ["tests/support/global-setup.ts"],
    projects: [
      {
        test: {
          name: "unit",
          include: ["tests/unit/**/*.test.ts"],
          environment: "node",
        },
      },
      {
        test: {
          name: "integration",
          include: ["tests/integration/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Sandboxes are real containers: keep parallelism modest on a 2-core machine.
          maxWorkers: 2,
        },
      },
      {
        test: {
          name: "security",
          include: ["tests/security/**/*.test.ts"],
          // These two run alone (the project below): the attack table measures a bystander's echo
          // under a fork bomb and a CPU hog, and the network suite flushes the shared egress rules,
          // which pauses every server's new sandboxes until they are re-applied.
          exclude: SECURITY_ALONE,
          environment: "node",
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // Each file starts its own servers (faults: its own Docker engine); two at a time.
          maxWorkers: 2,
        },
      },
      {
        test: {
          name: "security-alone",
          include: SECURITY_ALONE,
          environment: "node",
          testTimeout: 120_000,
          hookTimeout: 180_000,
          maxWorkers: 1,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "lessons",
          include: ["tests/lessons/**/*.test.ts"],
          environment: "node",
          // Each exercise gets its own sandbox and may build images: minutes, not seconds.
          testTimeout: 600_000,
          // Three proofs at once start many nested engines; under that load an inner engine has been
          // seen to miss an OOM event (exit 137 with OOMKilled false, limits-oom). One retry, in fresh
          // sandboxes, where every proof must pass again in full.
          retry: 1,
          hookTimeout: 120_000,
          maxConcurrency: 3,
        },
      },
      {
        test: {
          // Several servers on one Postgres (a real postgresql-15, initdb'd per run) behind a real proxy.
          name: "scaleout",
          include: ["tests/scaleout/**/*.test.ts"],
          environment: "node",
          testTimeout: 120_000,
          hookTimeout: 180_000,
          maxWorkers: 1,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "browser",
          include: ["tests/browser/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 180_000,
          maxWorkers: 1,
          fileParallelism: false,
        },
      },
    ],
  },
});
