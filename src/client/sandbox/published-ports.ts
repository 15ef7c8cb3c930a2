/**
 * The ports the learner published in their sandbox, live, as links that open the app in a new tab
 * (the <Ports> component). No framework; server data only ever reaches the page as text.
 *
 * Sources, from docs/preview.md:
 *   /ws/ports                        pushes the list whenever a container starts or stops (preferred:
 *                                    nothing runs in the sandbox while nothing changes)
 *   GET /api/sessions/current/ports  polled every 2 s when the socket cannot be used
 * Nothing is fetched while the page is hidden; coming back fetches at once.
 */
import { CloseCode } from "../../../contracts/close-codes.ts";
import type { PublishedPort } from "../../../contracts/preview-api.ts";
import { on } from "../common/bus.ts";

/** One published port, as the server describes it (contracts/preview-api.ts). */
export type PreviewPort = PublishedPort;

export type PortsState =
  | { state: "loading" }
  | { state: "none"; message: string }
  | { state: "starting" }
  | { state: "ready"; ports: PreviewPort[] };

const POLL_MS = 2_000;
const MAX_RETRY_MS = 10_000;

/** Checks what the server sent; anything unexpected is ignored rather than rendered. */
export function parsePortsMessage(data: unknown): PortsState | undefined {
  if (!data || typeof data !== "object") return undefined;
  const d = data as Record<string, unknown>;
  if (d.state === "starting") return { state: "starting" };
  if (d.state === "none") return { state: "none", message: typeof d.message === "string" ? d.message : "You have no sandbox yet." };
  if (d.state !== "ready" || !Array.isArray(d.ports)) return undefined;
  const ports: PreviewPort[] = [];
  for (const p of d.ports as unknown[]) {
    const port = parsePort(p);
    if (port) ports.push(port);
  }
  return { state: "ready", ports };
}

function parsePort(p: unknown): PreviewPort | undefined {
  if (!p || typeof p !== "object") return undefined;
  const o = p as Record<string, unknown>;
  const isPort = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;
  // Only links into this site's own /preview/ paths: a link is never somewhere else.
  const url = typeof o.url === "string" && /^\/preview\/[a-z0-9]+\/\d+\/$/.test(o.url) ? o.url : null;
  if (!isPort(o.port) || !isPort(o.containerPort) || typeof o.container !== "string" || typeof o.image !== "string") return undefined;
  return {
    port: o.port,
    containerPort: o.containerPort,
    container: o.container.slice(0, 128),
    image: o.image.slice(0, 255),
    reachable: o.reachable === true && url !== null,
    url,
    previewUrl: typeof o.previewUrl === "string" ? o.previewUrl.slice(0, 300) : null,
  };
}

/** What a screen reader hears when the list changes: "Port 8080 (web) is published." */
export function describeChange(before: PreviewPort[], after: PreviewPort[]): string | undefined {
  const had = new Map(before.map((p) => [p.port, p]));
  const has = new Map(after.map((p) => [p.port, p]));
  const added = after.filter((p) => !had.has(p.port)).map((p) => `Port ${p.port} (${p.container}) is published.`);
  const removed = before.filter((p) => !has.has(p.port)).map((p) => `Port ${p.port} is no longer published.`);
  const text = [...added, ...removed].join(" ");
  return text || undefined;
}

interface SocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number }) => void) | null;
  close(): void;
}

export interface PortFeedOptions {
  socketUrl?: string;
  apiUrl?: string;
  openSocket?: (url: string) => SocketLike;
  fetch?: (url: string, init?: RequestInit) => Promise<Response>;
  /** The page, for visibility; a stand-in in tests. */
  page?: { visibilityState: string; addEventListener(type: "visibilitychange", l: () => void): void; removeEventListener(type: "visibilitychange", l: () => void): void };
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
}

/**
 * One live source of the port list for the page: the push socket while it works, polling while it
 * does not, nothing while the page is hidden. Every <Ports> on the page shares it.
 */
export class PortFeed {
  private readonly listeners = new Set<(s: PortsState) => void>();
  private readonly options: Required<Omit<PortFeedOptions, "page">> & Pick<PortFeedOptions, "page">;
  private socket: SocketLike | undefined;
  private timer: unknown;
  private retryMs = 1_000;
  private socketFailures = 0;
  private polling = false;
  private running = false;
  private last: PortsState = { state: "loading" };
  private readonly onVisibility = () => this.visibilityChanged();

  constructor(options: PortFeedOptions = {}) {
    const loc = typeof location !== "undefined" ? location : undefined;
    this.options = {
      socketUrl: options.socketUrl ?? (loc ? `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/ws/ports` : "/ws/ports"),
      apiUrl: options.apiUrl ?? "/api/sessions/current/ports",
      openSocket: options.openSocket ?? ((url) => new WebSocket(url) as unknown as SocketLike),
      fetch: options.fetch ?? ((url, init) => globalThis.fetch(url, init)),
      page: options.page ?? (typeof document !== "undefined" ? document : undefined),
      setTimeout: options.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms)),
      clearTimeout: options.clearTimeout ?? ((h) => globalThis.clearTimeout(h as number)),
    };
  }

  get state(): PortsState {
    return this.last;
  }

  subscribe(listener: (s: PortsState) => void): () => void {
    this.listeners.add(listener);
    listener(this.last);
    if (!this.running) this.start();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  /** The sandbox may exist now (a terminal reported "ready"): look again without waiting. */
  nudge(): void {
    if (!this.running || this.hidden) return;
    if (this.socket && !this.polling) return;
    this.pause();
    this.resume();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.options.page?.addEventListener("visibilitychange", this.onVisibility);
    if (!this.hidden) this.resume();
  }

  stop(): void {
    this.running = false;
    this.options.page?.removeEventListener("visibilitychange", this.onVisibility);
    this.pause();
  }

  private get hidden(): boolean {
    return this.options.page?.visibilityState === "hidden";
  }

  private visibilityChanged(): void {
    if (!this.running) return;
    if (this.hidden) this.pause();
    else this.resume();
  }

  private pause(): void {
    if (this.timer !== undefined) this.options.clearTimeout(this.timer);
    this.timer = undefined;
    const socket = this.socket;
    this.socket = undefined;
    if (socket) {
      socket.onclose = null;
      socket.close();
    }
  }

  private resume(): void {
    if (this.polling) void this.poll();
    else this.connect();
  }

  private connect(): void {
    let opened = false;
    let socket: SocketLike;
    try {
      socket = this.options.openSocket(this.options.socketUrl);
    } catch {
      return this.fallBackToPolling();
    }
    this.socket = socket;
    socket.onopen = () => {
      opened = true;
    };
    socket.onmessage = (ev) => {
      this.socketFailures = 0;
      this.retryMs = 1_000;
      try {
        const state = parsePortsMessage(JSON.parse(String(ev.data)));
        if (state) this.publish(state);
      } catch {
        /* not JSON: ignore */
      }
    };
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      if (ev.code === CloseCode.unknownSession) {
        // No sandbox (yet, or any more): look again in a while, or at once when a terminal says ready.
        this.later(() => this.connect(), 5_000);
        return;
      }
      if (!opened && ++this.socketFailures >= 2) return this.fallBackToPolling();
      this.later(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    };
  }

  /** WebSockets blocked on the way (a proxy): ask every two seconds instead. */
  private fallBackToPolling(): void {
    this.polling = true;
    void this.poll();
  }

  private async poll(): Promise<void> {
    if (!this.running || this.hidden) return;
    try {
      const res = await this.options.fetch(this.options.apiUrl, { credentials: "same-origin", cache: "no-store" });
      if (res.status === 404) this.publish({ state: "none", message: "You have no sandbox yet." });
      else if (res.ok) {
        const state = parsePortsMessage(await res.json());
        if (state) this.publish(state);
      }
    } catch {
      /* offline for a moment: keep the last list and try again */
    }
    if (this.running && !this.hidden) this.later(() => void this.poll(), POLL_MS);
  }

  private later(fn: () => void, ms: number): void {
    if (this.timer !== undefined) this.options.clearTimeout(this.timer);
    this.timer = this.options.setTimeout(() => {
      this.timer = undefined;
      if (this.running && !this.hidden) fn();
    }, ms);
  }

  private publish(state: PortsState): void {
    this.last = state;
    for (const l of [...this.listeners]) l(state);
  }
}

let shared: PortFeed | undefined;

/** Renders every `[data-ports]` element (from Ports.astro) once, and keeps it live. */
export function mountPortLists(root: ParentNode = document): void {
  const elements = [...root.querySelectorAll<HTMLElement>("[data-ports]:not([data-ports-mounted])")];
  if (elements.length === 0) return;
  if (!shared) {
    shared = new PortFeed();
    on("shipshape:sandbox", (status) => {
      if (status.state === "ready") shared?.nudge();
    });
  }
  for (const el of elements) {
    el.setAttribute("data-ports-mounted", "");
    let before: PreviewPort[] | undefined;
    shared.subscribe((state) => {
      const ports = state.state === "ready" ? state.ports : [];
      render(el, state);
      // Announce changes, not the first list (the learner did not cause that one).
      if (before !== undefined) {
        const text = describeChange(before, ports);
        const live = el.querySelector<HTMLElement>("[data-ports-live]");
        if (text && live) live.textContent = text;
      }
      if (state.state === "ready") before = ports;
    });
  }
}

/** Updates the list in place, keyed by port, so a focused link keeps its focus. */
function render(el: HTMLElement, state: PortsState): void {
  const list = el.querySelector<HTMLUListElement>("[data-ports-list]");
  const empty = el.querySelector<HTMLElement>("[data-ports-empty]");
  if (!list || !empty) return;
  el.dataset.state = state.state;
  el.setAttribute("aria-busy", String(state.state === "loading" || state.state === "starting"));
  const ports = state.state === "ready" ? state.ports : [];
  list.hidden = ports.length === 0;
  empty.hidden = ports.length > 0;
  if (state.state === "none") empty.textContent = state.message;
  else if (state.state === "starting") empty.textContent = "Your sandbox is starting…";
  else if (state.state === "loading") empty.textContent = "Looking for published ports…";
  else empty.textContent = el.dataset.emptyText ?? "Nothing published yet.";

  const existing = new Map<string, HTMLLIElement>();
  for (const li of [...list.children] as HTMLLIElement[]) existing.set(li.dataset.key ?? "", li);
  let previous: Element | null = null;
  for (const p of ports) {
    const key = `${p.port}|${p.container}|${p.image}|${p.containerPort}|${p.url ?? ""}`;
    let li = existing.get(key);
    existing.delete(key);
    if (!li) li = portItem(p, key);
    const want: Element | null = previous ? previous.nextElementSibling : list.firstElementChild;
    if (want !== li) list.insertBefore(li, want);
    previous = li;
  }
  for (const li of existing.values()) li.remove();
}

function portItem(p: PreviewPort, key: string): HTMLLIElement {
  const li = document.createElement("li");
  li.className = "ports-item";
  li.dataset.key = key;
  li.dataset.port = String(p.port);
  let main: HTMLElement;
  if (p.url) {
    const a = document.createElement("a");
    a.href = p.url;
    a.target = "_blank";
    a.rel = "noopener";
    a.className = "ports-link";
    a.textContent = `Port ${p.port}`;
    const hint = document.createElement("span");
    hint.className = "visually-hidden";
    hint.textContent = " (opens in a new tab)";
    a.append(hint);
    main = a;
  } else {
    main = document.createElement("span");
    main.className = "ports-link ports-unreachable";
    main.textContent = `Port ${p.port}`;
  }
  const meta = document.createElement("span");
  meta.className = "ports-meta";
  meta.textContent = `${p.container} · ${p.image} · container port ${p.containerPort}`;
  li.append(main, " ", meta);
  if (!p.url) {
    const why = document.createElement("span");
    why.className = "ports-note";
    why.textContent = `Published on an address only the sandbox itself can reach (such as 127.0.0.1). Publish it with -p ${p.port}:${p.containerPort} to open it here.`;
    li.append(why);
  }
  return li;
}
