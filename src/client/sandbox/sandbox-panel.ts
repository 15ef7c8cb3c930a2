/**
 * The sandbox panel (<SandboxPanel>): a live picture of the learner's own Docker engine, from the
 * server's `/ws/sandbox-state` socket (docs/protocol.md). Containers as cards with their state,
 * images as stacks of layers with shared layers marked, volumes and networks with who uses them,
 * published ports as preview links. Every element is a real button or link (keyboard, text); what
 * changed is said in an aria-live region.
 *
 * WARNING: everything in a snapshot was printed in the learner's sandbox. It reaches the page as
 * text only (textContent, never HTML), and a link's target is only ever a /preview/ path of this
 * site (checked here too; the server builds it from its own records).
 *
 * The socket is open only while the page is visible and a panel is on it: the server watches a
 * sandbox only while someone looks.
 */
import { CloseCode } from "../../../contracts/close-codes.ts";
import type { ContainerView, ImageView, LayerView, SandboxState, SandboxStateMessage } from "../../../contracts/sandbox-state.ts";
import { on } from "../common/bus.ts";

const SOCKET_PATH = "/ws/sandbox-state";
const MAX_RETRY_MS = 15_000;
const PREVIEW_PATH = /^\/preview\/[a-z0-9]+\/\d{1,5}\/$/;

export type PanelFeedState =
  | { kind: "loading" }
  | { kind: "starting" }
  | { kind: "none"; message: string }
  | { kind: "state"; state: SandboxState; changes: string[] };

/** Sizes as people read them: 0 B, 812 B, 4.2 kB, 73 MB. */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 10 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}

export function imageName(image: Pick<ImageView, "id" | "tags">): string {
  return image.tags[0] ?? image.id.slice(7, 19);
}

/** One line a screen reader can read for a container card. */
export function containerText(c: ContainerView): string {
  const state =
    c.status === "exited" || c.status === "dead"
      ? c.oomKilled
        ? "killed: out of memory"
        : `exited with code ${c.exitCode ?? "unknown"}`
      : c.status;
  const ports = c.ports.filter((p) => p.protocol === "tcp").map((p) => p.hostPort);
  return `${c.name}, ${state}, image ${c.image}${ports.length ? `, publishes ${ports.join(", ")}` : ""}`;
}

export function layerText(image: ImageView, l: LayerView): string {
  const shared = l.sharedWith.length ? `, shared with ${l.sharedWith.join(", ")}` : "";
  return `Layer ${l.index + 1} of ${image.layers.length}: ${l.instruction || "step"}, ${formatBytes(l.size)}${shared}`;
}

interface SocketLike {
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number }) => void) | null;
  send(data: string): void;
  close(): void;
  readonly readyState: number;
}

/** The page's one connection to /ws/sandbox-state, shared by every panel on it. */
export class PanelFeed {
  private readonly listeners = new Set<(s: PanelFeedState) => void>();
  private readonly logListeners = new Set<(m: Extract<SandboxStateMessage, { type: "logs" }>) => void>();
  private socket: SocketLike | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private retryMs = 1_000;
  private last: PanelFeedState = { kind: "loading" };
  private readonly url: string;
  private readonly open: (url: string) => SocketLike;

  constructor(options: { url?: string; open?: (url: string) => SocketLike } = {}) {
    this.url = options.url ?? `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${SOCKET_PATH}`;
    this.open = options.open ?? ((url) => new WebSocket(url) as unknown as SocketLike);
    document.addEventListener("visibilitychange", () => (document.visibilityState === "hidden" ? this.pause() : this.resume()));
    on("shipshape:sandbox", (status) => {
      if (status.state === "ready" && this.last.kind !== "state") this.reconnectNow();
    });
  }

  subscribe(listener: (s: PanelFeedState) => void): void {
    this.listeners.add(listener);
    listener(this.last);
    this.resume();
  }

  onLogs(listener: (m: Extract<SandboxStateMessage, { type: "logs" }>) => void): void {
    this.logListeners.add(listener);
  }

  requestLogs(containerId: string): boolean {
    if (!this.socket || this.socket.readyState !== 1) return false;
    this.socket.send(JSON.stringify({ type: "logs", container: containerId }));
    return true;
  }

  private reconnectNow(): void {
    this.pause();
    this.resume();
  }

  private resume(): void {
    if (this.socket || this.listeners.size === 0 || document.visibilityState === "hidden") return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    let socket: SocketLike;
    try {
      socket = this.open(this.url);
    } catch {
      return this.later(this.retryMs);
    }
    this.socket = socket;
    socket.onmessage = (ev) => {
      let m: SandboxStateMessage;
      try {
        m = JSON.parse(String(ev.data)) as SandboxStateMessage;
      } catch {
        return;
      }
      this.retryMs = 1_000;
      if (m.type === "state" && m.state && Array.isArray(m.state.containers)) {
        this.publish({ kind: "state", state: m.state, changes: Array.isArray(m.changes) ? m.changes.map(String) : [] });
      } else if (m.type === "starting") this.publish({ kind: "starting" });
      else if (m.type === "none") this.publish({ kind: "none", message: String(m.message ?? "You have no sandbox yet.") });
      else if (m.type === "logs") for (const l of [...this.logListeners]) l(m);
    };
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      // No sandbox yet: look again later, or at once when a terminal says ready.
      if (ev.code === CloseCode.unknownSession) return this.later(10_000);
      this.later(this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    };
  }

  private later(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.resume();
    }, ms);
  }

  private pause(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const s = this.socket;
    this.socket = undefined;
    if (s) {
      s.onclose = null;
      s.close();
    }
  }

  private publish(s: PanelFeedState): void {
    this.last = s;
    for (const l of [...this.listeners]) l(s);
  }
}

let feed: PanelFeed | undefined;

/** Mounts every `[data-sandbox-panel]` (from SandboxPanel.astro) on the page, once. */
export function mountSandboxPanels(root: ParentNode = document): void {
  const panels = [...root.querySelectorAll<HTMLElement>("[data-sandbox-panel]:not([data-mounted])")];
  if (panels.length === 0) return;
  feed ??= new PanelFeed();
  for (const el of panels) {
    el.setAttribute("data-mounted", "");
    new SandboxPanelView(el, feed);
  }
}

/** What the learner opened for details: a container, a layer of an image, a volume. */
type Selection = { kind: "container"; id: string } | { kind: "layer"; image: string; index: number } | undefined;

class SandboxPanelView {
  private readonly el: HTMLElement;
  private readonly feed: PanelFeed;
  private state: SandboxState | undefined;
  private selected: Selection;
  private logs = new Map<string, { lines: string[]; error?: string }>();

  constructor(el: HTMLElement, feed: PanelFeed) {
    this.el = el;
    this.feed = feed;
    feed.onLogs((m) => {
      this.logs.set(m.container, { lines: Array.isArray(m.lines) ? m.lines.map(String) : [], error: m.error });
      this.render();
    });
    feed.subscribe((s) => this.update(s));
  }

  private part(name: string): HTMLElement {
    const found = this.el.querySelector<HTMLElement>(`[data-part="${name}"]`);
    if (!found) throw new Error(`sandbox panel: no ${name}`);
    return found;
  }

  private update(s: PanelFeedState): void {
    this.el.dataset.state = s.kind;
    const status = this.part("status");
    if (s.kind !== "state") {
      status.hidden = false;
      status.textContent = s.kind === "none" ? s.message : s.kind === "starting" ? "Your sandbox is starting…" : "Looking inside your sandbox…";
      return;
    }
    status.hidden = true;
    this.state = s.state;
    if (s.changes.length) this.part("live").textContent = `${s.changes.join("; ")}.`;
    this.render();
  }

  /** Redraws from the last snapshot; the focused control is found again by its key afterwards. */
  private render(): void {
    const s = this.state;
    if (!s) return;
    const focusedKey = (document.activeElement as HTMLElement | null)?.closest?.("[data-key]")?.getAttribute("data-key");
    const n = (count: number, one: string, many = `${one}s`) => `${count} ${count === 1 ? one : many}`;
    const userNetworks = s.networks.filter((x) => !x.builtIn);
    this.part("counts").textContent = [
      n(s.containers.length, "container"),
      n(s.images.length, "image"),
      n(s.volumes.length, "volume"),
      n(userNetworks.length, "network"),
      n(s.ports.length, "published port"),
    ].join(" · ") + (s.truncated ? " (more than shown)" : "");

    this.renderPorts(s);
    this.renderContainers(s);
    this.renderImages(s);
    this.renderVolumes(s);
    this.renderNetworks(s);
    this.renderDetails(s);
    if (focusedKey) this.el.querySelector<HTMLElement>(`[data-key="${CSS.escape(focusedKey)}"]`)?.focus();
  }

  private renderPorts(s: SandboxState): void {
    const list = this.part("ports");
    list.replaceChildren(
      ...s.ports.map((p) => {
        const li = el("li", "panel-port");
        li.dataset.port = String(p.port);
        if (p.url && PREVIEW_PATH.test(p.url)) {
          const a = el("a", "panel-port-link", `Port ${p.port}`);
          a.href = p.url;
          a.target = "_blank";
          a.rel = "noopener";
          a.dataset.key = `port:${p.port}`;
          a.append(el("span", "visually-hidden", " (opens the preview in a new tab)"));
          li.append(a);
        } else li.append(el("span", "panel-port-link panel-muted", `Port ${p.port}`));
        li.append(" ", el("span", "panel-muted", `→ ${p.container}:${p.containerPort}`));
        if (!p.url) li.append(el("span", "panel-note", ` Published on 127.0.0.1 only; publish it with -p ${p.port}:${p.containerPort} to open it here.`));
        return li;
      }),
    );
    this.part("ports-empty").hidden = s.ports.length > 0;
  }

  private renderContainers(s: SandboxState): void {
    this.part("containers").replaceChildren(
      ...s.containers.map((c) => {
        const li = el("li");
        const b = el("button", `panel-card status-${c.oomKilled ? "oom" : c.status}`);
        b.type = "button";
        b.dataset.key = `container:${c.id}`;
        b.dataset.container = c.name;
        b.setAttribute("aria-pressed", String(this.selected?.kind === "container" && this.selected.id === c.id));
        b.setAttribute("aria-label", containerText(c));
        const badge =
          c.status === "exited" || c.status === "dead" ? (c.oomKilled ? "OOM killed" : `exited (${c.exitCode ?? "?"})`) : c.status;
        b.append(el("span", "panel-card-name", c.name), el("span", "panel-badge", badge), el("span", "panel-card-image", c.image));
        const mounts = c.mounts.filter((m) => m.type !== "tmpfs");
        if (mounts.length) b.append(el("span", "panel-card-mounts", mounts.map((m) => `${m.type === "volume" ? "⛁" : "📁"} ${m.source} → ${m.destination}`).join("\n")));
        b.addEventListener("click", () => this.select({ kind: "container", id: c.id }));
        li.append(b);
        return li;
      }),
    );
    this.part("containers-empty").hidden = s.containers.length > 0;
  }

  private renderImages(s: SandboxState): void {
    this.part("images").replaceChildren(
      ...s.images.map((image) => {
        const li = el("li", "panel-image");
        li.dataset.image = imageName(image);
        const title = el("p", "panel-image-title");
        title.append(el("strong", "", imageName(image)), el("span", "panel-muted", ` ${formatBytes(image.size)}${image.usedBy.length ? ` · used by ${image.usedBy.join(", ")}` : ""}`));
        const stack = el("ol", "panel-stack");
        stack.setAttribute("aria-label", `Layers of ${imageName(image)}, newest on top`);
        const max = Math.max(1, ...image.layers.map((l) => l.size));
        // Newest on top, as a stack is drawn; the list's order says the same to a screen reader.
        for (const l of [...image.layers].reverse()) {
          const item = el("li");
          const b = el("button", `panel-layer${l.sharedWith.length ? " shared" : ""}${l.size === 0 ? " empty" : ""}`);
          b.type = "button";
          b.dataset.key = `layer:${image.id}:${l.index}`;
          b.dataset.shared = String(l.sharedWith.length > 0);
          b.setAttribute("aria-label", layerText(image, l));
          b.setAttribute("aria-pressed", String(this.selected?.kind === "layer" && this.selected.image === image.id && this.selected.index === l.index));
          // Width grows with the size on a log scale, so a 2 kB COPY is still visible next to a 70 MB base.
          const width = l.size === 0 ? 0 : Math.log10(l.size + 1) / Math.log10(max + 1);
          b.style.setProperty("--layer-width", `${Math.round(20 + 80 * width)}%`);
          b.append(el("span", "panel-layer-instruction", l.instruction || "step"), el("span", "panel-layer-size", formatBytes(l.size)));
          if (l.sharedWith.length) b.append(el("span", "panel-layer-shared", "shared"));
          b.addEventListener("click", () => this.select({ kind: "layer", image: image.id, index: l.index }));
          item.append(b);
          stack.append(item);
        }
        li.append(title, stack);
        return li;
      }),
    );
    this.part("images-empty").hidden = s.images.length > 0;
  }

  private renderVolumes(s: SandboxState): void {
    const binds = s.containers.flatMap((c) => c.mounts.filter((m) => m.type === "bind").map((m) => ({ c, m })));
    this.part("volumes").replaceChildren(
      ...s.volumes.map((v) => {
        const li = el("li", "panel-volume");
        li.dataset.volume = v.name;
        li.append(el("span", "panel-volume-name", `⛁ ${v.name}`), " ", el("span", "panel-muted", v.usedBy.length ? `used by ${v.usedBy.join(", ")}` : "not mounted (its data stays)"));
        return li;
      }),
      ...binds.map(({ c, m }) => {
        const li = el("li", "panel-volume");
        li.append(el("span", "panel-volume-name", `📁 ${m.source}`), " ", el("span", "panel-muted", `bind mount into ${c.name} at ${m.destination}${m.readOnly ? " (read-only)" : ""}`));
        return li;
      }),
    );
    this.part("volumes-empty").hidden = s.volumes.length + binds.length > 0;
  }

  private renderNetworks(s: SandboxState): void {
    const shown = s.networks.filter((n) => !n.builtIn || n.containers.length > 0);
    this.part("networks").replaceChildren(
      ...shown.map((n) => {
        const li = el("li", "panel-network");
        li.dataset.network = n.name;
        li.append(el("span", "panel-network-name", `${n.name}`), " ", el("span", "panel-muted", `${n.driver}${n.builtIn ? ", built in" : ""} · ${n.containers.length ? n.containers.join(", ") : "nobody on it"}`));
        return li;
      }),
    );
    this.part("networks-empty").hidden = shown.length > 0;
  }

  private select(next: Selection): void {
    const same = JSON.stringify(next) === JSON.stringify(this.selected);
    this.selected = same ? undefined : next;
    if (!same && next?.kind === "container") this.feed.requestLogs(next.id);
    this.render();
  }

  private renderDetails(s: SandboxState): void {
    const box = this.part("details");
    const sel = this.selected;
    const rows: Array<[string, string]> = [];
    let heading = "";
    let logs: { lines: string[]; error?: string } | undefined;
    let containerId: string | undefined;
    if (sel?.kind === "container") {
      const c = s.containers.find((x) => x.id === sel.id);
      if (c) {
        heading = `Container ${c.name}`;
        containerId = c.id;
        rows.push(
          ["State", c.status === "exited" || c.status === "dead" ? (c.oomKilled ? "killed: out of memory" : `exited with code ${c.exitCode ?? "unknown"}`) : c.status],
          ["Image", c.image],
          ["Command", c.command || "(none)"],
          ["Mounts", c.mounts.map((m) => `${m.type} ${m.source || "(memory)"} → ${m.destination}${m.readOnly ? " (read-only)" : ""}`).join("\n") || "none"],
          ["Networks", c.networks.join(", ") || "none"],
          ["Ports", c.ports.map((p) => `${p.hostPort} → ${p.containerPort}/${p.protocol}`).join(", ") || "none published"],
          ["Environment (names only)", c.envNames.join(", ") || "none"],
        );
        logs = this.logs.get(c.id);
      }
    } else if (sel?.kind === "layer") {
      const image = s.images.find((i) => i.id === sel.image);
      const l = image?.layers[sel.index];
      if (image && l) {
        heading = `${imageName(image)}, layer ${l.index + 1} of ${image.layers.length}`;
        rows.push(
          ["Instruction", l.instruction || "unknown"],
          ["Size", formatBytes(l.size)],
          ["Created by", l.createdBy],
          ["Created", l.createdAt],
          ["Shared with", l.sharedWith.join(", ") || "no other image (built for this one)"],
        );
      }
    }
    box.hidden = rows.length === 0;
    if (rows.length === 0) {
      box.replaceChildren();
      return;
    }
    const h = el("h4", "panel-details-title", heading);
    const dl = el("dl");
    for (const [k, v] of rows) dl.append(el("dt", "", k), el("dd", "", v));
    box.replaceChildren(h, dl);
    if (containerId) {
      const logTitle = el("p", "panel-details-logs-title", "Last log lines");
      const pre = el("pre", "panel-logs");
      pre.tabIndex = 0;
      pre.setAttribute("aria-label", `Last log lines of ${heading}`);
      pre.textContent = !logs ? "Loading…" : logs.error ? logs.error : logs.lines.length ? logs.lines.join("\n") : "(no output)";
      const refresh = el("button", "button button-small", "Reload logs");
      refresh.type = "button";
      refresh.dataset.key = `logs:${containerId}`;
      const id = containerId;
      refresh.addEventListener("click", () => this.feed.requestLogs(id));
      box.append(logTitle, pre, refresh);
    }
  }
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = "", text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
