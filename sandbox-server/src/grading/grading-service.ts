import type { Exercise } from "../../../contracts/content/exercise-schema.ts";
import { QUIZ_TASK_ID, quizResultId, type Quiz } from "../../../contracts/content/quiz-schema.ts";
import type { CheckResult, QuizAnswerResult } from "../../../contracts/grading-api.ts";
import type { ExerciseProgress, LearnerProgress, QuizProgress } from "../../../contracts/progress-api.ts";
import { ShipshapeError } from "../errors.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { Store, TaskProgress } from "../store/store.ts";
import type { Grader } from "./grader.ts";

export interface GradingServiceDeps {
  exercises: ReadonlyMap<string, Exercise>;
  /** Concept questions; their answers are part of the progress. */
  quizzes: ReadonlyMap<string, Quiz>;
  grader: Pick<Grader, "grade">;
  sessions: Pick<SessionManager, "current" | "sandboxOf">;
  store: Store;
  now?: () => number;
}

/**
 * Decides and stores every verdict: a Check grades the learner's own sandbox (found from the owner,
 * never named by the browser), a quiz answer is judged against the YAML's right option, and the
 * progress is read back from what was stored. The HTTP routes only parse and answer.
 */
/** Answers one learner may give to one quiz. */
export const QUIZ_ATTEMPTS_PER_QUIZ = 10;

export class GradingService {
  private readonly deps: GradingServiceDeps;
  private readonly now: () => number;

  constructor(deps: GradingServiceDeps) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
  }

  /** Grades the exercise in the owner's current sandbox; the grader stores one verdict per task. */
  async check(ownerId: string | undefined, exerciseId: string): Promise<CheckResult> {
    const exercise = this.deps.exercises.get(exerciseId);
    if (!exercise) throw new ShipshapeError("not_found", `There is no exercise called "${exerciseId}".`);
    const view = ownerId ? await this.deps.sessions.current(ownerId) : undefined;
    if (!view) throw new ShipshapeError("not_found", "You have no sandbox yet: open a terminal first.");
    const sandboxId = await this.deps.sessions.sandboxOf(view.sessionId, view.ownerId);
    return this.deps.grader.grade(exercise, sandboxId, { ownerId: view.ownerId, sessionId: view.sessionId, workshopId: view.workshopId });
  }

  /** The quiz, when it exists and `choice` is one of its options; a clear refusal otherwise. */
  quizFor(quizId: string, choice: number): Quiz {
    const quiz = this.deps.quizzes.get(quizId);
    if (!quiz) throw new ShipshapeError("not_found", `There is no quiz called "${quizId}".`);
    if (choice >= quiz.options.length) throw new ShipshapeError("bad_request", `Choose one of the ${quiz.options.length} options.`);
    return quiz;
  }

  /**
   * Refuses a learner who has answered this quiz QUIZ_ATTEMPTS_PER_QUIZ times already: a quiz has
   * at most six options, so trying each still fits; guessing past that is not learning, and each
   * answer is a row in the gradebook.
   */
  async checkQuizAttempts(ownerId: string | undefined, quiz: Quiz): Promise<void> {
    if (!ownerId) return;
    const attempts = await this.deps.store.results.countOf(ownerId, quizResultId(quiz.id), QUIZ_TASK_ID);
    if (attempts >= QUIZ_ATTEMPTS_PER_QUIZ) {
      throw new ShipshapeError(
        "limit_reached",
        `You have answered this question ${attempts} times, the most one learner may (${QUIZ_ATTEMPTS_PER_QUIZ}). ` +
          `Your answers so far are kept; read the lesson again and go on to the next part.`,
        `quiz ${quiz.id}: ${attempts} attempts`,
        { fields: { rule: "quiz_attempts" } },
      );
    }
  }

  /**
   * Judges an answer and stores the verdict with the learner's progress (results table, exercise
   * `quiz:<id>`, task `answer`), against their current session and workshop when they have one.
   */
  async answerQuiz(ownerId: string, quiz: Quiz, choice: number): Promise<QuizAnswerResult> {
    const correct = choice === quiz.correct;
    const view = await this.deps.sessions.current(ownerId);
    const at = this.now();
    await this.deps.store.results.insert({
      ownerId,
      sessionId: view?.sessionId ?? "",
      workshopId: view?.workshopId ?? null,
      exerciseId: quizResultId(quiz.id),
      taskId: QUIZ_TASK_ID,
      passed: correct,
      message: `Answered "${quiz.options[choice]}": ${correct ? "right" : "not right"}.`,
      at,
    });
    return { quizId: quiz.id, choice, correct, explanation: quiz.explanation, at: new Date(at).toISOString() };
  }

  /** Every exercise and quiz with what the learner reached, from their stored verdicts. */
  async progress(ownerId: string | undefined): Promise<LearnerProgress> {
    const tasks = ownerId ? await this.deps.store.results.progressOf(ownerId) : [];
    const exercises = [...this.deps.exercises.values()].map((e): ExerciseProgress => {
      const mine = tasks.filter((t) => t.exerciseId === e.id);
      return {
        exerciseId: e.id,
        lesson: e.lesson,
        passed: e.tasks.every((t) => mine.some((m) => m.taskId === t.id && m.passed)),
        tasks: e.tasks.map((t) => {
          const p = mine.find((m) => m.taskId === t.id);
          return { taskId: t.id, passed: p?.passed ?? false, attempts: p?.attempts ?? 0, lastMessage: p?.lastMessage ?? null };
        }),
      };
    });
    return { exercises, quizzes: quizProgress(this.deps.quizzes, tasks) };
  }
}

/** The learner's quizzes, from their stored verdicts: once passed, the right option and why. */
export function quizProgress(quizzes: ReadonlyMap<string, Quiz>, tasks: readonly TaskProgress[]): QuizProgress[] {
  return [...quizzes.values()].map((q) => {
    const row = tasks.find((t) => t.exerciseId === quizResultId(q.id) && t.taskId === QUIZ_TASK_ID);
    const passed = row?.passed ?? false;
    return {
      quizId: q.id,
      lesson: q.lesson,
      passed,
      attempts: row?.attempts ?? 0,
      choice: passed ? q.correct : null,
      explanation: passed ? q.explanation : null,
    };
  });
}
