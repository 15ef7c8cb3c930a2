/**
 * A read-only view of a learner's terminal for the instructor (the `/ws/watch` socket in
 * docs/workshops.md). xterm draws at the learner's size; nothing typed here is sent anywhere:
 * the terminal takes no input and the server drops what a viewer sends.
 */
import { CloseCode } from "../../../contracts/close-codes.ts";
import type { WatchMessage } from "../../../contracts/terminal-protocol.ts";

export interface ViewerHandle {
  close(): void;
}

export interface ViewerOptions {
  container: HTMLElement;
  url: string;
  onStatus(text: string): void;
}

export async function openViewer(options: ViewerOptions): Promise<ViewerHandle> {
  const { Terminal } = await import("@xterm/xterm");
  const dark = document.documentElement.dataset.theme === "dark";
  const term = new Terminal({
    disableStdin: true,
    cursorBlink: false,
    // Screen readers read the mirrored text; tests read it too.
    screenReaderMode: true,
    scrollback: 2000,
    fontFamily: getComputedStyle(options.container).getPropertyValue("--font-mono").trim() || "monospace",
    fontSize: 13,
    theme: dark ? { background: "#0d1117", foreground: "#e6edf3" } : { background: "#f6f8fa", foreground: "#1f2328", cursor: "#1f2328" },
  });
  options.container.replaceChildren();
  term.open(options.container);
  term.textarea?.setAttribute("aria-label", "Learner's terminal, read-only");
  term.textarea?.setAttribute("readonly", "");
  // xterm handles no key here: Escape closes the dialog, Tab moves on, as everywhere on the page.
  term.attachCustomKeyEventHandler(() => false);

  let closedByUs = false;
  const ws = new WebSocket(options.url);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (event) => {
    if (typeof event.data !== "string") {
      term.write(new Uint8Array(event.data as ArrayBuffer));
      return;
    }
    let m: WatchMessage;
    try {
      m = JSON.parse(event.data) as WatchMessage;
    } catch {
      return;
    }
    if (m.type === "size" && m.cols && m.rows) term.resize(m.cols, m.rows);
    else if (m.type === "ready") options.onStatus(`Watching live. ${m.learner || "The learner"} does not see you; you cannot type here.`);
    else if (m.type === "notice" && m.message) options.onStatus(m.message);
  };
  ws.onclose = (event) => {
    if (closedByUs) return;
    options.onStatus(event.reason || (event.code === 1006 ? "The connection was refused or lost." : "The terminal closed."));
  };
  ws.onerror = () => {};
  return {
    close: () => {
      closedByUs = true;
      ws.close(CloseCode.normal, "viewer closed");
      term.dispose();
    },
  };
}
