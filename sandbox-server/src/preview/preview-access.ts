/**
 * Who may open a sandbox's preview. One function, a list of rules, the first rule with an opinion
 * wins and the default is no. Workshops will add a rule ("the instructor of the sandbox's workshop
 * may open it") without touching the proxy:
 *
 *   const instructorRule: PreviewAccessRule = (subject, viewer) =>
 *     subject.workshopId && instructorAuth.verify(cookieValues(viewer.cookies, origin.cookies.instructor)[0])
 *       ? { allow: true, role: "instructor" }
 *       : undefined;
 *   createPreview({ ..., rules: [...defaultPreviewRules, instructorRule] })
 */

/** The sandbox being opened, from the server's own session records. */
export interface PreviewSubject {
  sessionId: string;
  ownerId: string;
  workshopId: string | undefined;
  port: number;
}

/** What the request proves about who is asking. */
export interface PreviewViewer {
  /** From the site's signed owner cookie (path form, and links followed on the site). */
  ownerId: string | undefined;
  /** The raw Cookie header, for rules that verify a sign-in of their own (an instructor's cookie). */
  cookies: string | undefined;
}

export type AccessDecision = { allow: true; role: string } | { allow: false; reason: string };

/** undefined: no opinion, ask the next rule. */
export type PreviewAccessRule = (subject: PreviewSubject, viewer: PreviewViewer) => AccessDecision | undefined;

export const ownerRule: PreviewAccessRule = (subject, viewer) =>
  viewer.ownerId !== undefined && viewer.ownerId === subject.ownerId ? { allow: true, role: "owner" } : undefined;

export const defaultPreviewRules: readonly PreviewAccessRule[] = [ownerRule];

export function authorizePreview(
  subject: PreviewSubject,
  viewer: PreviewViewer,
  rules: readonly PreviewAccessRule[] = defaultPreviewRules,
): AccessDecision {
  for (const rule of rules) {
    const decision = rule(subject, viewer);
    if (decision) return decision;
  }
  return { allow: false, reason: viewer.ownerId ? "not the sandbox's owner" : "no owner cookie" };
}
