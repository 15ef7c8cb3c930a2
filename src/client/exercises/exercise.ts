/**
 * The Exercise component's behaviour: Check (the server grades the sandbox), per-task verdicts,
 * hints one at a time, and the learner's stored progress on load. Nothing here decides a pass: the
 * verdicts shown are the server's answer to Check, or the server's record from `GET /api/progress`.
 */
import type { CheckResult } from "../../../contracts/grading-api.ts";
import type { ExerciseProgress } from "../../../contracts/progress-api.ts";
import { onServerProgress, refreshServerProgress } from "../progress/graded-progress.ts";

type TaskState = "none" | "pass" | "fail";

const STATE_TEXT: Record<TaskState, string> = { none: "", pass: "Passed: ", fail: "Not yet: " };

/** Mounts every `[data-exercise]` on the page once. */
export function mountExercises(root: ParentNode = document): void {
  for (const element of root.querySelectorAll<HTMLElement>("[data-exercise]:not([data-mounted])")) {
    element.dataset.mounted = "true";
    new ExerciseView(element);
  }
}

class ExerciseView {
  private readonly root: HTMLElement;
  private readonly id: string;
  private readonly button: HTMLButtonElement;
  private readonly status: HTMLElement;
  private readonly summary: HTMLElement;
  private readonly details: HTMLElement;
  private busy = false;
  /** Once the learner checked on this page, that verdict wins over the stored one per task. */
  private checkedHere = false;

  constructor(root: HTMLElement) {
    this.root = root;
    this.id = root.dataset.exerciseId ?? "";
    this.button = root.querySelector<HTMLButtonElement>("[data-check]")!;
    this.status = root.querySelector<HTMLElement>("[data-exercise-status]")!;
    this.summary = this.status.querySelector<HTMLElement>("[data-status-summary]")!;
    this.details = this.status.querySelector<HTMLElement>("[data-status-details]")!;
    this.button.addEventListener("click", () => void this.check());
    for (const task of this.tasks()) this.mountHints(task);
    onServerProgress((progress) => {
      const mine = progress.exercises.find((e) => e.exerciseId === this.id);
      if (mine) this.restore(mine);
    });
  }

  private tasks(): HTMLElement[] {
    return [...this.root.querySelectorAll<HTMLElement>("[data-task-id]")];
  }

  private task(id: string): HTMLElement | undefined {
    return this.tasks().find((t) => t.dataset.taskId === id);
  }

  private mountHints(task: HTMLElement): void {
    const button = task.querySelector<HTMLButtonElement>("[data-hint-button]");
    if (!button) return;
    const hints = [...task.querySelectorAll<HTMLElement>("[data-hint]")];
    const label = button.querySelector<HTMLElement>("[data-hint-label]")!;
    const update = () => {
      const shown = hints.filter((h) => !h.hidden).length;
      button.hidden = shown >= hints.length;
      label.textContent = `${shown === 0 ? "Show a hint" : "Show another hint"} (${shown + 1} of ${hints.length})`;
    };
    button.addEventListener("click", () => {
      const next = hints.find((h) => h.hidden);
      if (!next) return;
      next.hidden = false;
      update();
      // The button is gone after the last hint: keep keyboard focus where the learner reads.
      if (button.hidden) next.focus();
    });
    update();
  }

  private setTask(id: string, result: TaskState, message: string | null): void {
    const task = this.task(id);
    if (!task) return;
    task.dataset.result = result;
    const state = task.querySelector<HTMLElement>("[data-task-state]");
    if (state) state.textContent = STATE_TEXT[result];
    const text = task.querySelector<HTMLElement>("[data-task-message]")!;
    text.textContent = message ?? "";
    text.hidden = !message;
  }

  private setBadge(done: boolean): void {
    this.root.dataset.state = done ? "done" : "open";
    const badge = this.root.querySelector<HTMLElement>("[data-exercise-badge]");
    if (badge) badge.hidden = !done;
  }

  private say(kind: "info" | "pass" | "fail" | "error" | "busy", summary: string, details = ""): void {
    this.status.dataset.kind = kind;
    this.summary.textContent = summary;
    this.details.textContent = details ? ` ${details}` : "";
  }

  /** The server's record: tasks passed before (even on another day or page), the latest failure otherwise. */
  private restore(progress: ExerciseProgress): void {
    this.setBadge(progress.passed);
    if (this.checkedHere) return;
    let any = false;
    for (const t of progress.tasks) {
      if (t.passed) this.setTask(t.taskId, "pass", null);
      else if (t.attempts > 0) this.setTask(t.taskId, "fail", t.lastMessage);
      else continue;
      any = true;
    }
    if (progress.passed) this.say("pass", "You passed this exercise.");
    else if (any) {
      const passed = progress.tasks.filter((t) => t.passed).length;
      this.say("info", `${passed} of ${progress.tasks.length} tasks passed so far.`);
    }
  }

  private async check(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    this.root.setAttribute("aria-busy", "true");
    this.button.setAttribute("aria-disabled", "true");
    this.button.dataset.busy = "true";
    const buttonLabel = this.button.querySelector<HTMLElement>("[data-check-label]")!;
    buttonLabel.textContent = "Checking…";
    this.say("busy", "Checking your sandbox…");
    try {
      const result = await postCheck(this.id);
      if ("error" in result) {
        this.say("error", result.error);
        return;
      }
      this.checkedHere = true;
      for (const t of result.tasks) this.setTask(t.taskId, t.passed ? "pass" : "fail", t.message);
      const passed = result.tasks.filter((t) => t.passed).length;
      if (result.passed) {
        this.say("pass", `All ${result.tasks.length} tasks pass. Well done!`);
      } else {
        const missing = result.tasks.filter((t) => !t.passed).map((t) => `${plain(t.title)}: ${t.message}`);
        this.say("fail", `${passed} of ${result.tasks.length} tasks pass.`, `Not yet: ${missing.join(" ")}`);
      }
      await refreshServerProgress();
    } finally {
      this.busy = false;
      this.root.removeAttribute("aria-busy");
      this.button.removeAttribute("aria-disabled");
      delete this.button.dataset.busy;
      buttonLabel.textContent = "Check";
    }
  }
}

/** Task titles use `backticks` for code; read aloud without them. */
function plain(text: string): string {
  return text.replace(/`/g, "");
}

/** Asks the server to grade; a failure to run becomes the server's sentence for the learner. */
export async function postCheck(exerciseId: string, fetchImpl: typeof fetch = fetch): Promise<CheckResult | { error: string }> {
  let response: Response;
  try {
    response = await fetchImpl(`/api/exercises/${encodeURIComponent(exerciseId)}/check`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
  } catch {
    return { error: "Cannot reach the sandbox server. Check your connection and try again." };
  }
  const body = (await response.json().catch(() => undefined)) as Partial<CheckResult> & { message?: string } | undefined;
  if (!response.ok || !body || !Array.isArray(body.tasks)) {
    return { error: body?.message ?? `The check could not run (HTTP ${response.status}). Try again in a moment.` };
  }
  return body as CheckResult;
}
