/**
 * /instructor/: sign in with the admin secret, list workshops, create one. The server prints a
 * sign-in link with the secret in the URL fragment (never sent to a server); this page uses it
 * once and removes it from the address bar and history.
 */
import type { WorkshopSummary } from "../../../contracts/workshop-api.ts";
import { ApiError, formatClock, instructorApi } from "./workshop-api.ts";

export function dashboardHref(id: string): string {
  return `/instructor/workshop/?id=${encodeURIComponent(id)}`;
}

function stateOf(w: WorkshopSummary): string {
  if (w.endedAt !== null) return `Ended ${new Date(w.endedAt).toLocaleDateString()} ${formatClock(w.endedAt)}`;
  if (w.endsAt !== null) return `Running, ends ${formatClock(w.endsAt)}`;
  return "Waiting for the first learner";
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

  const showSignIn = (message = "") => {
    loading.hidden = true;
    signedIn.hidden = true;
    signInSection.hidden = false;
    signInError.textContent = message;
    secretInput.focus();
  };

  const showWorkshops = async (focus: boolean) => {
    loading.hidden = true;
    signInSection.hidden = true;
    signedIn.hidden = false;
    if (focus) heading.focus();
    try {
      const [workshops, lessons] = await Promise.all([instructorApi.list(), instructorApi.lessons()]);
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

  // A sign-in link from the server's start-up message: #secret=… (fragments never reach a server).
  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromLink = fragment.get("secret");
  if (fromLink) history.replaceState(null, "", location.pathname + location.search);

  void (async () => {
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
