import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The server's Prometheus registry (prom-client): counters, gauges read at scrape time, and
 * histograms a host owner can alert on, plus the process's own metrics (CPU, memory, event-loop lag).
 */
export class Metrics {
  readonly registry = new Registry();

  constructor(options: { processMetrics?: boolean } = {}) {
    // Off in unit tests that make many registries: the collectors keep timers of their own.
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: "shipshape_" });
  }

  counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  /** A value read when Prometheus scrapes, so nothing has to remember to update it. */
  gauge(name: string, help: string, read: () => number, labels?: Record<string, string>): void {
    const labelNames = Object.keys(labels ?? {});
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        if (labels) this.set(labels, read());
        else this.set(read());
      },
    });
  }

  histogram<L extends string = never>(name: string, help: string, buckets: number[], labelNames: readonly L[] = []): Histogram<L> {
    return new Histogram({ name, help, buckets, labelNames, registers: [this.registry] });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}

/** Seconds, from a warm claim (~0.1 s) to a cold start on a busy machine (tens of seconds). */
const START_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 90];
/** Seconds a check takes, queue wait included: alert when a class's p95 passes 5 s. */
const CHECK_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 40];
/** Seconds from a terminal socket's hello to a shell attached (sandbox start included). */
const ATTACH_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30];

export function createServerMetrics(m: Metrics) {
  return {
    sandboxesCreated: m.counter("shipshape_sandboxes_created_total", "Sandboxes started"),
    sandboxesFailed: m.counter("shipshape_sandboxes_failed_total", "Sandboxes that failed to start"),
    sandboxesReaped: m.counter("shipshape_sandboxes_reaped_total", "Sandboxes removed by the reaper (expired, idle or orphaned)"),
    // Must stay 0: each one is an attempt to give a sandbox some session already holds to another.
    sandboxHandOversRefused: m.counter("shipshape_sandbox_handovers_refused_total", "Sandboxes not handed out because a session already held them"),
    bytesIn: m.counter("shipshape_terminal_bytes_in_total", "Bytes typed into terminals"),
    bytesOut: m.counter("shipshape_terminal_bytes_out_total", "Bytes of terminal output sent to browsers"),
    rejectedMessages: m.counter("shipshape_rejected_messages_total", "Malformed or unknown messages rejected"),
    sandboxStart: m.histogram(
      "shipshape_sandbox_start_seconds",
      "From a learner asking for a sandbox to it being ready: warm (taken from the pool) or cold (started for them)",
      START_BUCKETS,
      ["kind"],
    ),
    checkDuration: m.histogram(
      "shipshape_check_duration_seconds",
      "From a Check press to its verdict, waiting for a free probe included",
      CHECK_BUCKETS,
      ["outcome"],
    ),
    terminalAttach: m.histogram(
      "shipshape_terminal_attach_seconds",
      "From a terminal socket's hello to its shell being attached",
      ATTACH_BUCKETS,
    ),
    previewErrors: m.counter("shipshape_preview_errors_total", "Port preview requests that could not reach the learner's app", ["reason"]),
  };
}
export type ServerMetrics = ReturnType<typeof createServerMetrics>;

/** Seconds since a `performance.now()` reading, for histograms. */
export function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}
