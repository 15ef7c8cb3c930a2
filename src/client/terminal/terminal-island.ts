/**
 * Mounts every `[data-testid="terminal"]` placeholder on the page. xterm and its addons are
 * imported only when a terminal scrolls into view (or a Run button targets it), so a lesson's
 * prose renders without waiting for ~300 KB of terminal code.
 */
import { emit, on } from "../common/bus.ts";
import { describeStatus, type SandboxStatus } from "../sandbox/sandbox-status.ts";
import { sandbox, startNewSandbox } from "../sandbox/sandbox-session.ts";
import { TerminalConnection } from "./terminal-connection.ts";
import { currentTheme } from "../common/theme.ts";

const RENEWING = "Starting a new sandbox…";

type XtermModules = Awaited<ReturnType<typeof loadXterm>>;

let xtermModules: Promise<XtermModules> | undefined;
let webglModule: Promise<typeof import("@xterm/addon-webgl")> | undefined;

function loadXterm() {
  // The WebGL renderer's code downloads alongside, not after, xterm's.
  if (webgl2Available()) webglModule ??= import("@xterm/addon-webgl");
  return Promise.all([
    import("@xterm/xterm"),
    import("@xterm/addon-fit"),
    import("@xterm/addon-web-links"),
  ]).then(([xterm, fit, links]) => ({ Terminal: xterm.Terminal, FitAddon: fit.FitAddon, WebLinksAddon: links.WebLinksAddon }));
}

const themes = {
  dark: {
    background: "#0d1117",
    foreground: "#e6edf3",
    cursor: "#e6edf3",
    cursorAccent: "#0d1117",
    selectionBackground: "#264f78",
    black: "#484f58",
    red: "#ff7b72",
    green: "#3fb950",
    yellow: "#d29922",
    blue: "#58a6ff",
    magenta: "#bc8cff",
    cyan: "#39c5cf",
    white: "#b1bac4",
    brightBlack: "#6e7681",
    brightRed: "#ffa198",
    brightGreen: "#56d364",
    brightYellow: "#e3b341",
    brightBlue: "#79c0ff",
    brightMagenta: "#d2a8ff",
    brightCyan: "#56d4dd",
    brightWhite: "#ffffff",
  },
  light: {
    background: "#f6f8fa",
    foreground: "#1f2328",
    cursor: "#1f2328",
    cursorAccent: "#f6f8fa",
    selectionBackground: "#b6d7ff",
    black: "#24292f",
    red: "#cf222e",
    green: "#116329",
    yellow: "#7d4e00",
    blue: "#0969da",
    magenta: "#8250df",
    cyan: "#1b7c83",
    white: "#6e7781",
    brightBlack: "#57606a",
    brightRed: "#a40e26",
    brightGreen: "#1a7f37",
    brightYellow: "#633c01",
    brightBlue: "#218bff",
    brightMagenta: "#a475f9",
    brightCyan: "#3192aa",
    brightWhite: "#8c959f",
  },
} as const;

let webgl2: boolean | undefined;

/**
 * Can this browser draw with WebGL2 at all? (Headless Chromium with --disable-3d-apis cannot.)
 * Asked once per page: creating a WebGL context is not free, least of all in a software renderer.
 */
function webgl2Available(): boolean {
  if (webgl2 === undefined) {
    try {
      webgl2 = document.createElement("canvas").getContext("webgl2") !== null;
    } catch {
      webgl2 = false;
    }
  }
  return webgl2;
}

class TerminalIsland {
  private readonly root: HTMLElement;
  private readonly frame: HTMLElement;
  private readonly overlay: HTMLElement | null;
  readonly name: string;
  private loading: Promise<void> | undefined;
  private connection: TerminalConnection | undefined;
  private readonly disposers: Array<() => void> = [];

  constructor(root: HTMLElement) {
    this.root = root;
    this.name = root.dataset.terminalName ?? "main";
    this.frame = root.closest<HTMLElement>("[data-terminal-frame]") ?? root;
    this.overlay = this.frame.querySelector<HTMLElement>("[data-terminal-overlay]");
  }

  watch(): void {
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) {
          observer.disconnect();
          void this.load();
        }
      },
      { rootMargin: "200px" },
    );
    observer.observe(this.root);
    this.disposers.push(() => observer.disconnect());
    // A keyboard user can reach the placeholder before it is in view (it is focusable).
    this.root.addEventListener("focus", () => void this.load().then(() => this.focus()), { once: true });
    this.disposers.push(
      on("shipshape:run", (request) => {
        if (request.terminal !== this.name || request.handled) return;
        request.handled = true;
        void this.run(request.command, request.interrupt);
      }),
    );
    this.overlay?.querySelector("[data-new-sandbox]")?.addEventListener("click", () => void startNewSandbox());
    this.overlay?.querySelector("[data-retry]")?.addEventListener("click", () => this.connection?.retryNow());
  }

  private focus(): void {
    this.root.querySelector<HTMLTextAreaElement>(".xterm-helper-textarea")?.focus();
  }

  private async run(command: string, interrupt: boolean): Promise<void> {
    await this.load();
    const connection = this.connection;
    if (!connection) return;
    if (!isInViewport(this.root)) this.frame.scrollIntoView({ block: "nearest", behavior: "smooth" });
    if (interrupt) connection.sendInput("\x03", { queue: true });
    // Each line is typed with Enter (CR, what the Enter key sends), so multi-line blocks run in order.
    const text = command.replace(/\r\n?/g, "\n").replace(/\n+$/, "").split("\n").map((line) => `${line}\r`).join("");
    connection.sendInput(text, { queue: true });
  }

  load(): Promise<void> {
    this.loading ??= this.mountWithRetries();
    return this.loading;
  }

  /** A dropped connection while xterm's code downloads should not leave a dead terminal. */
  private async mountWithRetries(attempts = 3): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.mount();
        return;
      } catch (error) {
        // Forget the failed import so the next attempt fetches again (a browser that caches the
        // failure fails again, and the learner is told to reload).
        xtermModules = undefined;
        webglModule = undefined;
        if (attempt >= attempts) {
          console.error(`[shipshape] terminal "${this.name}" failed to load`, error);
          this.showOverlay({ state: "failed", message: "The terminal could not load. Reload the page to try again." });
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 1_000 * attempt));
      }
    }
  }

  private async mount(): Promise<void> {
    this.root.dataset.state = "loading";
    // The sandbox is asked for while xterm's code downloads, not after: the two take about as long.
    // (A failure here is not lost: the connection asks again and reports it.)
    sandbox.credentials().catch(() => {});
    xtermModules ??= loadXterm();
    const { Terminal, FitAddon, WebLinksAddon } = await xtermModules;

    const term = new Terminal({
      // The accessibility tree mirrors the screen as text: screen readers read it, tests assert on it.
      screenReaderMode: true,
      cursorBlink: true,
      fontFamily: getComputedStyle(this.root).getPropertyValue("--font-mono").trim() || "monospace",
      fontSize: 14,
      lineHeight: 1.15,
      scrollback: 5000,
      theme: themes[currentTheme()],
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.loadAddon(new WebLinksAddon());

    this.root.replaceChildren();
    this.root.removeAttribute("tabindex");
    term.open(this.root);
    term.textarea?.setAttribute("aria-describedby", `${this.root.id}-help`);
    await this.useWebgl(term);
    fit.fit();

    /** Set from "Start a new sandbox" until the new one answers (or the request fails). */
    let renewing = false;
    const connection = new TerminalConnection({
      name: this.name,
      session: sandbox,
      sink: {
        write: (data, done) => term.write(data, done),
        reset: () => term.reset(),
        get cols() {
          return term.cols;
        },
        get rows() {
          return term.rows;
        },
      },
      onStatus: (status) => {
        sandbox.report(this.name, status);
        if (status.state !== "connecting") renewing = false;
        // While a new sandbox is on its way the panel stays up, so nobody types into a shell
        // that is not there yet (keys typed while disconnected are dropped, not replayed).
        this.showOverlay(status, renewing && status.state === "connecting" ? RENEWING : undefined);
      },
      onNotice: (notice) => {
        emit("shipshape:notice", { terminal: this.name, ...notice });
        this.showNotice(notice.message);
      },
      onServerError: (error) => console.warn(`[shipshape] server rejected a message on "${this.name}":`, error),
    });
    this.connection = connection;

    term.onData((data) => connection.sendInput(data));
    // Some mouse reports are not valid UTF-8; xterm hands them over as a byte string.
    term.onBinary((data) => connection.sendInput(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff)));
    term.onResize(({ cols, rows }) => connection.resize(cols, rows));
    term.attachCustomKeyEventHandler((event) => this.handleKey(event, term));

    let frame = 0;
    const resizeObserver = new ResizeObserver(() => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => {
        if (this.root.offsetParent !== null) fit.fit();
      });
    });
    resizeObserver.observe(this.root);
    this.disposers.push(() => resizeObserver.disconnect());
    this.disposers.push(on("shipshape:theme", ({ theme }) => (term.options.theme = themes[theme])));
    this.disposers.push(
      sandbox.onRenewStart((outcome) => {
        renewing = true;
        this.showOverlay({ state: "connecting" }, RENEWING);
        outcome.catch((error: unknown) => {
          renewing = false;
          // Back to where we were (the button is still there), with the reason.
          const reason = error instanceof Error ? error.message : "The new sandbox could not be started.";
          this.showOverlay(connection.status, reason);
        });
      }),
    );
    this.disposers.push(sandbox.onRenew(() => connection.restart()));
    const online = () => connection.retryNow();
    window.addEventListener("online", online);
    this.disposers.push(() => window.removeEventListener("online", online));

    this.root.dataset.state = "mounted";
    connection.connect();
  }

  private async useWebgl(term: InstanceType<XtermModules["Terminal"]>): Promise<void> {
    if (!webgl2Available()) return; // The DOM renderer is already active.
    try {
      webglModule ??= import("@xterm/addon-webgl");
      const { WebglAddon } = await webglModule;
      const webgl = new WebglAddon();
      // A lost context (GPU reset, too many contexts on the page) falls back to the DOM renderer.
      webgl.onContextLoss(() => {
        webgl.dispose();
        delete this.root.dataset.renderer;
      });
      term.loadAddon(webgl);
      this.root.dataset.renderer = "webgl";
    } catch (error) {
      console.info("[shipshape] WebGL renderer unavailable; using the DOM renderer", error);
    }
  }

  /** Copy and paste that do not clash with the shell's own Ctrl-C / Ctrl-V, and a way out. */
  private handleKey(event: KeyboardEvent, term: InstanceType<XtermModules["Terminal"]>): boolean {
    if (event.type !== "keydown") return true;
    const key = event.key.toLowerCase();
    const copy = (event.ctrlKey && event.shiftKey && key === "c") || (event.ctrlKey && key === "insert");
    const paste = (event.ctrlKey && event.shiftKey && key === "v") || (event.shiftKey && key === "insert");
    if (copy) {
      if (term.hasSelection()) void navigator.clipboard?.writeText(term.getSelection());
      event.preventDefault();
      return false;
    }
    if (paste) {
      event.preventDefault();
      void navigator.clipboard?.readText().then((text) => term.paste(text), () => {});
      return false;
    }
    // Tab belongs to the shell (completion). Shift+Tab is left to the browser, which moves focus
    // out of the terminal, so keyboard users are never trapped; the hint is in the terminal's
    // accessible description.
    if (key === "tab" && event.shiftKey && !event.ctrlKey && !event.altKey && !event.metaKey) return false;
    return true;
  }

  /**
   * The panel over the terminal: start-up progress, reconnecting, and the final states with their
   * button. Not shown for a first "connecting" (it is quick and would only flash).
   */
  private showOverlay(status: SandboxStatus, message?: string): void {
    this.frame.dataset.status = status.state;
    const overlay = this.overlay;
    if (!overlay) return;
    overlay.hidden = status.state === "idle" || status.state === "ready" || (status.state === "connecting" && !message);
    const text = overlay.querySelector<HTMLElement>("[data-overlay-text]");
    if (text) text.textContent = message ?? describeStatus(status);
    const progress = overlay.querySelector<HTMLProgressElement>("progress");
    if (progress) {
      progress.hidden = status.state !== "starting";
      if (status.state === "starting") progress.value = status.progress;
    }
    const newSandbox = overlay.querySelector<HTMLElement>("[data-new-sandbox]");
    if (newSandbox) newSandbox.hidden = status.state !== "expired";
    const retry = overlay.querySelector<HTMLElement>("[data-retry]");
    if (retry) retry.hidden = status.state !== "reconnecting" && status.state !== "failed";
  }

  private showNotice(message: string): void {
    const notice = this.frame.querySelector<HTMLElement>("[data-terminal-notice]");
    if (!notice) return;
    notice.textContent = message;
    notice.hidden = message === "";
  }
}

function isInViewport(element: HTMLElement): boolean {
  const rect = element.getBoundingClientRect();
  return rect.bottom > 0 && rect.top < window.innerHeight;
}

const islands = new WeakMap<HTMLElement, TerminalIsland>();

export function mountTerminals(): void {
  for (const root of document.querySelectorAll<HTMLElement>('[data-testid="terminal"]')) {
    if (islands.has(root)) continue;
    const island = new TerminalIsland(root);
    islands.set(root, island);
    island.watch();
  }
}
