/**
 * /instructor/: sign in with the admin secret or accept an invite, list workshops, create one;
 * admins also invite instructors and disable them. The server prints a sign-in link with the
 * secret in the URL fragment, and an invite link carries its token there too (fragments are never
 * sent to a server); this page uses either once and removes it from the address bar and history.
 */
import type { CreatedInvite, InstructorAccount, InstructorSessionView, WorkshopSummary } from "../../../contracts/workshop-api.ts";
import { ApiError, formatClock, instructorApi } from "./workshop-api.ts";

export function dashboardHref(id: string): string {
  return `/instructor/workshop/?id=${encodeURIComponent(id)}`;
}

function stateOf(w: WorkshopSummary): string {
  if (w.endedAt !== null) return `Ended ${new Date(w.endedAt).toLocaleDateString()} ${formatClock(w.endedAt)}`;
  if (w.endsAt !== null) return `Running, ends ${formatClock(w.endsAt)}`;
  return "Waiting for the first learner";
}

/** What each security tier means to an instructor choosing what learners may do (docs/security.md). */
export const TIER_TEXT: Record<string, string> = {
  isolated: "Sandboxes run in the isolated tier: each is an unprivileged system container, fit for anonymous learners on a public site.",
  classroom: "Sandboxes run in the classroom tier (Docker-in-Docker): for learners you trust, not for a public site.",
};

/** The server's tier, as /readyz reports it; says nothing when the server does not answer. */
async function showTier(note: HTMLElement): Promise<void> {
  try {
    const ready = (await (await fetch("/readyz")).json()) as { tier?: string };
    note.textContent = (ready.tier && TIER_TEXT[ready.tier]) || "";
  } catch {
    note.textContent = "";
  }
}

export function mountInstructorHome(): void {
  const loading = document.querySelector<HTMLElement>("[data-loading]")!;
  const signInSection = document.querySelector<HTMLElement>("[data-sign-in]")!;
  const signInForm = document.querySelector<HTMLFormElement>("[data-sign-in-form]")!;
  const secretInput = signInForm.querySelector<HTMLInputElement>("#instructor-secret")!;
  const signInError = signInForm.querySelector<HTMLElement>("[data-sign-in-error]")!;
  const signedIn = document.querySelector<HTMLElement>("[data-signed-in]")!;
  const heading = document.querySelector<HTMLElement>("#workshops-title")!;
  const signOut = document.querySelector<HTMLButtonElement>("[data-sign-out]")!;
  const empty = document.querySelector<HTMLElement>("[data-empty]")!;
  const table = document.querySelector<HTMLElement>("[data-list-table]")!;
  const list = document.querySelector<HTMLElement>("[data-list]")!;
  const createForm = document.querySelector<HTMLFormElement>("[data-create-form]")!;
  const choices = createForm.querySelector<HTMLElement>("[data-lesson-choices]")!;
  const createError = createForm.querySelector<HTMLElement>("[data-create-error]")!;
  const inviteSection = document.querySelector<HTMLElement>("[data-invite]")!;
  const inviteText = inviteSection.querySelector<HTMLElement>("[data-invite-text]")!;
  const inviteError = inviteSection.querySelector<HTMLElement>("[data-invite-error]")!;
  const inviteAccept = inviteSection.querySelector<HTMLButtonElement>("[data-invite-accept]")!;
  const who = document.querySelector<HTMLElement>("[data-who]")!;
  const tierNote = document.querySelector<HTMLElement>("[data-tier]")!;
  const adminArea = document.querySelector<HTMLElement>("[data-admin]")!;
  const inviteForm = document.querySelector<HTMLFormElement>("[data-invite-form]")!;
  const inviteFormError = inviteForm.querySelector<HTMLElement>("[data-invite-form-error]")!;
  const inviteResult = inviteForm.querySelector<HTMLElement>("[data-invite-result]")!;
  const inviteLink = inviteForm.querySelector<HTMLInputElement>("[data-invite-link]")!;
  const inviteCopy = inviteForm.querySelector<HTMLButtonElement>("[data-invite-copy]")!;
  const inviteStatus = inviteForm.querySelector<HTMLElement>("[data-invite-status]")!;
  const people = document.querySelector<HTMLElement>("[data-people]")!;
  const peopleStatus = document.querySelector<HTMLElement>("[data-people-status]")!;
  let me: InstructorSessionView["instructor"];

  /** Shows a one-time link (an invite, or a sign-in link for an existing account) with its copy button. */
  const showLink = (created: CreatedInvite, what: string) => {
    inviteLink.value = new URL(created.link, location.origin).href;
    inviteStatus.textContent = `${what} for ${created.name}: send it to them yourself; it works once, until ${new Date(created.expiresAt).toLocaleString()}.`;
    inviteResult.hidden = false;
    inviteLink.focus();
    inviteLink.select();
  };

  const showPeople = async () => {
    const accounts: InstructorAccount[] = await instructorApi.instructors();
    people.replaceChildren(
      ...accounts.map((account) => {
        const tr = document.createElement("tr");
        const name = document.createElement("th");
        name.scope = "row";
        name.textContent = account.name;
        const role = document.createElement("td");
        role.textContent = account.role === "admin" ? "Admin" : "Instructor";
        const state = document.createElement("td");
        state.textContent = account.disabledAt === null ? "Active" : `Disabled ${new Date(account.disabledAt).toLocaleDateString()}`;
        const actions = document.createElement("td");
        // The built-in admin is the admin secret's account; it is signed out by changing the secret.
        if (account.disabledAt === null && account.id !== "admin" && account.id !== me?.id) {
          const disable = document.createElement("button");
          disable.type = "button";
          disable.className = "button";
          disable.textContent = "Disable";
          disable.setAttribute("aria-label", `Disable ${account.name}`);
          const link = document.createElement("button");
          link.type = "button";
          link.className = "button";
          link.textContent = "New sign-in link";
          link.setAttribute("aria-label", `New sign-in link for ${account.name}`);
          link.addEventListener("click", async () => {
            try {
              showLink(await instructorApi.signInLink(account.id), "Sign-in link");
            } catch (error) {
              peopleStatus.textContent = error instanceof Error ? error.message : String(error);
            }
          });
          disable.addEventListener("click", async () => {
            if (!confirm(`Disable ${account.name}? They are signed out at once and cannot sign in again.`)) return;
            try {
              await instructorApi.disableInstructor(account.id);
              peopleStatus.textContent = `${account.name} is disabled.`;
              await showPeople();
              peopleStatus.focus();
            } catch (error) {
              peopleStatus.textContent = error instanceof Error ? error.message : String(error);
            }
          });
          actions.append(link, " ", disable);
        }
        tr.append(name, role, state, actions);
        return tr;
      }),
    );
  };

  const showSignIn = (message = "") => {
    loading.hidden = true;
    signedIn.hidden = true;
    inviteSection.hidden = true;
    signInSection.hidden = false;
    signInError.textContent = message;
    secretInput.focus();
  };

  const showWorkshops = async (focus: boolean) => {
    loading.hidden = true;
    signInSection.hidden = true;
    inviteSection.hidden = true;
    signedIn.hidden = false;
    if (focus) heading.focus();
    void showTier(tierNote);
    try {
      const [session, workshops, lessons] = await Promise.all([instructorApi.session(), instructorApi.list(), instructorApi.lessons()]);
      me = session.instructor;
      who.textContent = me ? `Signed in as ${me.name}${me.role === "admin" ? " (admin)" : ""}` : "";
      adminArea.hidden = me?.role !== "admin";
      if (me?.role === "admin") await showPeople();
      empty.hidden = workshops.length > 0;
      table.hidden = workshops.length === 0;
      list.replaceChildren(
        ...workshops.map((w) => {
          const tr = document.createElement("tr");
          const name = document.createElement("th");
          name.scope = "row";
          const link = document.createElement("a");
          link.href = dashboardHref(w.id);
          link.textContent = w.title;
          name.append(link);
          const code = document.createElement("td");
          code.className = "code";
          code.textContent = w.code;
          const learners = document.createElement("td");
          learners.textContent = `${w.counts.admitted} of ${w.capacity} seats${w.counts.queued ? `, ${w.counts.queued} waiting` : ""}`;
          const state = document.createElement("td");
          state.textContent = stateOf(w);
          tr.append(name, code, learners, state);
          return tr;
        }),
      );
      if (choices.children.length === 0) {
        choices.replaceChildren(
          ...lessons.map((lesson, index) => {
            const li = document.createElement("li");
            const label = document.createElement("label");
            const box = document.createElement("input");
            box.type = "checkbox";
            box.name = "lessons";
            box.value = lesson.slug;
            box.checked = index === 0;
            const meta = document.createElement("span");
            meta.className = "meta";
            meta.textContent =
              lesson.exercises.length === 0 ? "no exercises" : `${lesson.exercises.length} exercise${lesson.exercises.length === 1 ? "" : "s"}`;
            label.append(box, document.createTextNode(lesson.title), meta);
            li.append(label);
            return li;
          }),
        );
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return showSignIn("Your sign-in has expired; sign in again.");
      createError.textContent = error instanceof Error ? error.message : String(error);
    }
  };

  signInForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    signInError.textContent = "";
    if (!secretInput.value.trim()) {
      signInError.textContent = "Enter the instructor secret.";
      return secretInput.focus();
    }
    try {
      await instructorApi.signIn(secretInput.value);
      secretInput.value = "";
      await showWorkshops(true);
    } catch (error) {
      signInError.textContent = error instanceof Error ? error.message : String(error);
      secretInput.select();
    }
  });

  signOut.addEventListener("click", async () => {
    await instructorApi.signOut().catch(() => {});
    showSignIn();
  });

  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    createError.textContent = "";
    const data = new FormData(createForm);
    const lessons = data.getAll("lessons").map(String);
    if (lessons.length === 0) {
      createError.textContent = "Choose at least one lesson.";
      return choices.querySelector<HTMLInputElement>("input")?.focus();
    }
    const submit = createForm.querySelector<HTMLButtonElement>('button[type="submit"]')!;
    submit.disabled = true;
    try {
      const created = await instructorApi.create({
        title: String(data.get("title") ?? ""),
        lessons,
        capacity: Number(data.get("capacity")),
        durationMinutes: Number(data.get("duration")),
        warm: Number(data.get("warm") ?? 0),
      });
      location.assign(dashboardHref(created.id));
    } catch (error) {
      createError.textContent = error instanceof Error ? error.message : String(error);
      if (error instanceof ApiError && error.status === 401) showSignIn("Your sign-in has expired; sign in again.");
    } finally {
      submit.disabled = false;
    }
  });

  inviteForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    inviteFormError.textContent = "";
    const data = new FormData(inviteForm);
    const name = String(data.get("name") ?? "").trim();
    if (!name) {
      inviteFormError.textContent = "Enter the instructor's name.";
      return inviteForm.querySelector<HTMLInputElement>("#invite-name")?.focus();
    }
    const submit = inviteForm.querySelector<HTMLButtonElement>('button[type="submit"]')!;
    submit.disabled = true;
    try {
      const created = await instructorApi.createInvite(name, data.get("role") === "admin" ? "admin" : "instructor");
      showLink(created, "Invite link");
      await showPeople();
    } catch (error) {
      inviteFormError.textContent = error instanceof Error ? error.message : String(error);
      if (error instanceof ApiError && error.status === 401) showSignIn("Your sign-in has expired; sign in again.");
    } finally {
      submit.disabled = false;
    }
  });

  inviteCopy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(inviteLink.value);
      inviteStatus.textContent = "Link copied.";
    } catch {
      // No clipboard permission (or not a secure context): leave it selected for Ctrl+C.
      inviteLink.focus();
      inviteLink.select();
      inviteStatus.textContent = "Copying is not allowed here; the link is selected, press Ctrl+C (⌘C on a Mac).";
    }
  });

  const showInvite = async (token: string) => {
    loading.hidden = true;
    signInSection.hidden = true;
    signedIn.hidden = true;
    inviteSection.hidden = false;
    inviteSection.querySelector<HTMLElement>("#invite-title")!.focus();
    try {
      const preview = await instructorApi.previewInvite(token);
      inviteText.textContent = `This link signs you in as ${preview.name}, ${preview.role === "admin" ? "an admin" : "an instructor"}. It works once.`;
      inviteAccept.hidden = false;
      inviteAccept.onclick = async () => {
        inviteAccept.disabled = true;
        inviteError.textContent = "";
        try {
          await instructorApi.redeemInvite(token);
          await showWorkshops(true);
        } catch (error) {
          inviteError.textContent = error instanceof Error ? error.message : String(error);
        } finally {
          inviteAccept.disabled = false;
        }
      };
    } catch (error) {
      inviteText.textContent = "";
      inviteError.textContent = error instanceof Error ? error.message : String(error);
    }
  };

  // A sign-in link from the server's start-up message: #secret=…, or an invite: #invite=…
  // (fragments never reach a server).
  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromLink = fragment.get("secret");
  const invite = fragment.get("invite");
  if (fromLink || invite) history.replaceState(null, "", location.pathname + location.search);

  void (async () => {
    if (invite) return showInvite(invite);
    if (fromLink) {
      try {
        await instructorApi.signIn(fromLink);
        return await showWorkshops(true);
      } catch (error) {
        return showSignIn(error instanceof Error ? error.message : String(error));
      }
    }
    const ok = await instructorApi.signedIn().catch(() => false);
    if (ok) await showWorkshops(false);
    else showSignIn();
  })();
}
