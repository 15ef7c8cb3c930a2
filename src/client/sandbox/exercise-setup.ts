/**
 * Starting states: when the sandbox is ready, asks the server to prepare it for each exercise on
 * the page that declares a `setup`. The server decides whether it runs (once per sandbox, so a
 * reload does not undo the learner's work) and where (the owner's own sandbox). A new sandbox
 * ("start a new sandbox") arrives as a new session, a reset ("reset my sandbox") as an event, and
 * either way the setups run again.
 */
import type { SetupResult } from "../../../contracts/grading-api.ts";
import { emit, on } from "../common/bus.ts";
import { sandbox } from "./sandbox-session.ts";

export function prepareExercises(root: ParentNode = document): void {
  const exercises = [...root.querySelectorAll<HTMLElement>("[data-exercise][data-exercise-setup]")];
  if (exercises.length === 0) return;
  let preparedFor: string | undefined;
  // A reset keeps the session but not the sandbox: its setups must run again once it is ready.
  on("shipshape:sandbox-reset", () => (preparedFor = undefined));
  on("shipshape:sandbox", async (status) => {
    if (status.state !== "ready") return;
    let sessionId: string;
    try {
      ({ sessionId } = await sandbox.credentials());
    } catch {
      return;
    }
    if (preparedFor === sessionId) return;
    preparedFor = sessionId;
    // In page order: an imported scenario's later steps build on the first one's starting state.
    for (const element of exercises) {
      const id = element.dataset.exerciseId ?? "";
      const line = element.querySelector<HTMLElement>("[data-setup-status]");
      element.dataset.setup = "running";
      if (line) {
        line.hidden = false;
        line.textContent = "Preparing your sandbox for this exercise…";
      }
      const outcome = await postSetup(id);
      // Killercoda's foreground.sh: typed where the learner will look, once, as the scenario would.
      if (!("error" in outcome) && outcome.start) emit("shipshape:run", { terminal: "main", command: outcome.start, interrupt: false });
      element.dataset.setup = "error" in outcome ? "error" : "ready";
      if (line) {
        line.textContent = "error" in outcome ? outcome.error : "Your sandbox is prepared for this exercise.";
        line.hidden = !("error" in outcome) && outcome.state !== "ran";
      }
    }
  });
}

async function postSetup(exerciseId: string): Promise<SetupResult | { error: string }> {
  try {
    const response = await fetch(`/api/exercises/${encodeURIComponent(exerciseId)}/setup`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    const body = (await response.json().catch(() => undefined)) as (SetupResult & { message?: string }) | undefined;
    if (!response.ok || !body?.state) return { error: body?.message ?? `Your sandbox could not be prepared (HTTP ${response.status}). Reload the page to try again.` };
    return body;
  } catch {
    return { error: "Cannot reach the sandbox server to prepare your sandbox. Reload the page to try again." };
  }
}
