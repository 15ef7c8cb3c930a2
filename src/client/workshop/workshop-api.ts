/**
 * The browser side of the workshop API (docs/workshops.md): instructor sign-in, workshops and
 * their dashboard, and the learner's join flow. The shapes are the server's own
 * (contracts/workshop-api.ts); nothing here touches the DOM, so the pages' scripts stay small.
 */
import type {
  CatalogEntry,
  CreatedInvite,
  CreateWorkshop,
  DashboardSnapshot,
  InstructorAccount,
  InstructorRole,
  InstructorSessionView,
  InvitePreview,
  LearnerView,
  WorkshopSummary,
} from "../../../contracts/workshop-api.ts";

/** A failed call; `message` is the server's sentence for a person. */
export class ApiError extends Error {
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

async function request<T>(method: string, url: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch {
    throw new ApiError("Cannot reach the server. Check your connection and try again.", 0);
  }
  if (response.status === 204) return undefined as T;
  let data: unknown;
  try {
    data = await response.json();
  } catch {
    data = undefined;
  }
  if (!response.ok) {
    const message = (data as { message?: unknown } | undefined)?.message;
    throw new ApiError(typeof message === "string" && message ? message : `The server answered HTTP ${response.status}.`, response.status);
  }
  return data as T;
}

export const instructorApi = {
  signedIn: () => request<{ signedIn: boolean }>("GET", "/api/instructor/session").then((r) => r.signedIn),
  signIn: (secret: string) => request<{ signedIn: boolean }>("POST", "/api/instructor/session", { secret }),
  signOut: () => request<void>("DELETE", "/api/instructor/session"),
  session: () => request<InstructorSessionView>("GET", "/api/instructor/session"),
  createInvite: (name: string, role: InstructorRole) => request<CreatedInvite>("POST", "/api/instructor/invites", { name, role }),
  previewInvite: (token: string) => request<InvitePreview>("POST", "/api/instructor/invites/preview", { token }),
  redeemInvite: (token: string) => request<InstructorSessionView>("POST", "/api/instructor/invites/redeem", { token }),
  instructors: () => request<{ instructors: InstructorAccount[] }>("GET", "/api/instructor/instructors").then((r) => r.instructors),
  signInLink: (id: string) => request<CreatedInvite>("POST", `/api/instructor/instructors/${encodeURIComponent(id)}/sign-in-link`),
  disableInstructor: (id: string) => request<InstructorAccount>("POST", `/api/instructor/instructors/${encodeURIComponent(id)}/disable`),
  lessons: () => request<{ lessons: CatalogEntry[] }>("GET", "/api/instructor/lessons").then((r) => r.lessons),
  list: () => request<{ workshops: WorkshopSummary[] }>("GET", "/api/workshops").then((r) => r.workshops),
  create: (input: CreateWorkshop) =>
    request<WorkshopSummary>("POST", "/api/workshops", input),
  dashboard: (id: string) => request<DashboardSnapshot>("GET", `/api/workshops/${encodeURIComponent(id)}`),
  setCapacity: (id: string, capacity: number) => request<WorkshopSummary>("PATCH", `/api/workshops/${encodeURIComponent(id)}`, { capacity }),
  prewarm: (id: string, count: number) => request<WorkshopSummary>("POST", `/api/workshops/${encodeURIComponent(id)}/prewarm`, { count }),
  broadcast: (id: string, message: string) =>
    request<{ delivered: number }>("POST", `/api/workshops/${encodeURIComponent(id)}/messages`, { message }),
  end: (id: string) => request<WorkshopSummary>("POST", `/api/workshops/${encodeURIComponent(id)}/end`),
  eventsUrl: (id: string) => `/api/workshops/${encodeURIComponent(id)}/events`,
  gradesUrl: (id: string) => `/api/workshops/${encodeURIComponent(id)}/grades.csv`,
  watchUrl: (location: { protocol: string; host: string }, workshopId: string, memberId: string, terminal: string) =>
    `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws/watch?${new URLSearchParams({ workshop: workshopId, learner: memberId, terminal })}`,
};

export const learnerApi = {
  join: (code: string, name: string) => request<LearnerView>("POST", "/api/workshops/join", { code, name }),
  mine: () => request<LearnerView>("GET", "/api/workshops/mine"),
  leave: () => request<void>("DELETE", "/api/workshops/mine"),
};

/** "about 4 minutes", "less than a minute". */
export function describeWait(seconds: number): string {
  if (seconds < 60) return "less than a minute";
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `about ${minutes} minute${minutes === 1 ? "" : "s"}`;
  const hours = Math.round(minutes / 6) / 10;
  return `about ${hours} hours`;
}

export function formatClock(at: number): string {
  return new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
