/**
 * The page-level event bus: CustomEvents on `document`. Components talk through it so that a Run
 * button or a status badge never imports xterm (which loads lazily, with the terminal).
 */
import type { SandboxStatus } from "../sandbox/sandbox-status.ts";

export interface RunRequest {
  /** Terminal name, as in `<Terminal name>` and the lesson's `terminals`. */
  terminal: string;
  /** Text typed into the shell; an Enter is added after each line. */
  command: string;
  /** Send Ctrl-C first, to stop whatever is running in the foreground. */
  interrupt: boolean;
  /** Set by the terminal that takes the request, so the sender can tell nobody did. */
  handled?: boolean;
}

export interface BusEvents {
  "shipshape:run": RunRequest;
  "shipshape:sandbox": SandboxStatus;
  "shipshape:theme": { theme: "light" | "dark" };
  "shipshape:notice": { terminal: string; code: string; message: string };
  /** The learner reset their sandbox: same session, a fresh sandbox; per-sandbox work runs again. */
  "shipshape:sandbox-reset": { sessionId: string };
}

export type BusEventName = keyof BusEvents;

/** Dispatches synchronously and returns the detail, which listeners may have annotated. */
export function emit<K extends BusEventName>(name: K, detail: BusEvents[K]): BusEvents[K] {
  document.dispatchEvent(new CustomEvent(name, { detail }));
  return detail;
}

/** Subscribes; call the returned function to unsubscribe. */
export function on<K extends BusEventName>(name: K, handler: (detail: BusEvents[K]) => void): () => void {
  const listener = (event: Event) => handler((event as CustomEvent<BusEvents[K]>).detail);
  document.addEventListener(name, listener);
  return () => document.removeEventListener(name, listener);
}
