/**
 * The port preview's list of published ports, as the server sends it (`GET /api/sessions/current/ports`
 * and the `/ws/ports` push socket, docs/preview.md) and the page reads it
 * (src/client/sandbox/published-ports.ts). No zod here: the page imports this file at run time.
 *
 * The socket closes with `CloseCode.unknownSession` (contracts/close-codes.ts) after a `none`
 * message: the browser has no sandbox (yet, or any more) and looks again later; any other close
 * is a broken connection to retry.
 */

export const PORTS_API = "/api/sessions/current/ports";
export const PORTS_SOCKET = "/ws/ports";

/** One published TCP port of a container in the learner's sandbox. */
export interface PublishedPort {
  /** The port published in the sandbox (what `docker ps` shows on the left). */
  port: number;
  containerPort: number;
  container: string;
  image: string;
  /** False when published only on an address the preview cannot reach (127.0.0.1 inside the sandbox). */
  reachable: boolean;
  /** Opens the preview: a path on the site's origin (it redirects to the preview host when there is one). null when unreachable. */
  url: string | null;
  /** Where the app then lives: the preview host's URL, or the same path as `url`. */
  previewUrl: string | null;
}

/** The port list of one session (the API's answer; the socket adds `type: "ports"`). */
export interface PortsSnapshot {
  sessionId: string;
  state: "ready" | "starting";
  ports: PublishedPort[];
}

/** What `/ws/ports` sends: a snapshot whenever the list changes, or `none` before it closes. */
export type PortsMessage =
  | ({ type: "ports" } & PortsSnapshot)
  | { type: "ports"; state: "none"; ports: []; message: string };

/** `POST /api/sessions/current/ports/<port>/share`: a link anyone may open until `expiresAt` (ISO 8601). */
export interface ShareLinkAnswer {
  url: string;
  expiresAt: string;
}
