/**
 * The Quiz component's behaviour: the learner picks an option and answers; the server judges it
 * (the right option is not in the page), records it with their progress, and explains.
 */
import { inlineCodeToHtml } from "../../lib/code-text.ts";
import type { QuizAnswer, QuizAnswerResult } from "../../../contracts/grading-api.ts";
import { onServerProgress, refreshServerProgress } from "../progress/graded-progress.ts";

export function mountQuizzes(root: ParentNode = document): void {
  for (const element of root.querySelectorAll<HTMLElement>("[data-quiz]:not([data-mounted])")) {
    element.dataset.mounted = "true";
    mountQuiz(element);
  }
}

function mountQuiz(root: HTMLElement): void {
  const id = root.dataset.quizId ?? "";
  const form = root.querySelector<HTMLFormElement>("form")!;
  const button = root.querySelector<HTMLButtonElement>("[data-answer]")!;
  const result = root.querySelector<HTMLElement>("[data-quiz-result]")!;
  const verdict = result.querySelector<HTMLElement>("[data-quiz-verdict]")!;
  const explanation = result.querySelector<HTMLElement>("[data-quiz-explanation]")!;
  const radios = () => [...root.querySelectorAll<HTMLInputElement>("input[type=radio]")];
  let busy = false;
  let answeredHere = false;

  const show = (kind: "right" | "wrong" | "error" | "busy" | "none", text: string, why?: string) => {
    root.dataset.result = kind;
    verdict.textContent = text;
    // The explanation comes from our own server and may use `backticks`; everything else is escaped.
    explanation.innerHTML = why ? inlineCodeToHtml(why) : "";
    explanation.hidden = !why;
  };
  const mark = (choice: number | null, correct: boolean) => {
    for (const [i, radio] of radios().entries()) {
      const option = radio.closest<HTMLElement>("[data-option]")!;
      option.dataset.verdict = i === choice ? (correct ? "right" : "wrong") : "";
    }
  };

  // Changing the choice after an answer clears the marks, so the page never shows a stale verdict.
  form.addEventListener("change", () => {
    if (root.dataset.result === "right" || root.dataset.result === "wrong") {
      mark(null, false);
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    const chosen = radios().findIndex((r) => r.checked);
    if (chosen < 0) {
      show("error", "Choose an answer first.");
      radios()[0]?.focus();
      return;
    }
    busy = true;
    button.setAttribute("aria-disabled", "true");
    show("busy", "Checking your answer…");
    try {
      const answer = await postAnswer(id, chosen);
      if ("error" in answer) {
        show("error", answer.error);
        return;
      }
      answeredHere = true;
      mark(answer.choice, answer.correct);
      show(answer.correct ? "right" : "wrong", answer.correct ? "Right." : "Not quite. Have another look.", answer.explanation);
      await refreshServerProgress();
    } finally {
      busy = false;
      button.removeAttribute("aria-disabled");
    }
  });

  onServerProgress((progress) => {
    const mine = progress.quizzes.find((q) => q.quizId === id);
    if (!mine) return;
    root.dataset.passed = String(mine.passed);
    const badge = root.querySelector<HTMLElement>("[data-quiz-badge]");
    if (badge) badge.hidden = !mine.passed;
    if (answeredHere || !mine.passed || mine.choice === null) return;
    const radio = radios()[mine.choice];
    if (radio) radio.checked = true;
    mark(mine.choice, true);
    show("right", "You answered this one right.", mine.explanation ?? undefined);
  });
}

export async function postAnswer(quizId: string, choice: number, fetchImpl: typeof fetch = fetch): Promise<QuizAnswerResult | { error: string }> {
  let response: Response;
  try {
    response = await fetchImpl(`/api/quizzes/${encodeURIComponent(quizId)}/answer`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ choice } satisfies QuizAnswer),
    });
  } catch {
    return { error: "Cannot reach the server. Check your connection and try again." };
  }
  const body = (await response.json().catch(() => undefined)) as (Partial<QuizAnswerResult> & { message?: string }) | undefined;
  if (!response.ok || !body || typeof body.correct !== "boolean") {
    return { error: body?.message ?? `Your answer could not be checked (HTTP ${response.status}). Try again in a moment.` };
  }
  return body as QuizAnswerResult;
}
