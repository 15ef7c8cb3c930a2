/** Counters and gauges for /metrics in the Prometheus text format. No dependency needed. */
export class Metrics {
  private readonly counters = new Map<string, { help: string; value: number }>();
  private readonly gauges = new Map<string, { help: string; read: () => number }>();

  counter(name: string, help: string): { inc(by?: number): void } {
    const entry = this.counters.get(name) ?? { help, value: 0 };
    this.counters.set(name, entry);
    return {
      inc: (by = 1) => {
        entry.value += by;
      },
    };
  }

  gauge(name: string, help: string, read: () => number): void {
    this.gauges.set(name, { help, read });
  }

  render(): string {
    const lines: string[] = [];
    for (const [name, c] of this.counters) lines.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`, `${name} ${c.value}`);
    for (const [name, g] of this.gauges) lines.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${g.read()}`);
    return lines.join("\n") + "\n";
  }
}

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
  };
}
export type ServerMetrics = ReturnType<typeof createServerMetrics>;
