import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import type { Quiz } from "../../../contracts/content/quiz-schema.ts";
import { ShipshapeError } from "../../../sandbox-server/src/errors.ts";
import type { SessionManager } from "../../../sandbox-server/src/sessions/session-manager.ts";
import { Signer } from "../../../sandbox-server/src/common/signing.ts";
import { SqliteStore as Store } from "../../../sandbox-server/src/store/store.ts";
import { GradingService, QUIZ_ATTEMPTS_PER_QUIZ, quizProgress } from "../../../sandbox-server/src/grading/grading-service.ts";
import { QUIZ_ANSWERS, QUIZ_ANSWERS_PER_ADDRESS, quizRoutes } from "../../../sandbox-server/src/transport/quiz-routes.ts";

const quiz: Quiz = {
  id: "cmd-vs-entrypoint",
  lesson: "dockerfile-cmd-entrypoint",
  question: "What does docker run IMAGE Pavlos print?",
  options: ["Hello world", "Pavlos", "Hello Pavlos"],
  correct: 2,
  explanation: "Arguments replace CMD, never the ENTRYPOINT.",
};

function setup(session?: { sessionId: string; workshopId: string | null }, quizList: Quiz[] = [quiz]) {
  const store = new Store(":memory:");
  const signer = new Signer("x".repeat(40));
  const sessions = { current: () => (session ? { ...session, ownerId: "owner-1" } : undefined) } as unknown as SessionManager;
  // No exercise is checked here: a grader that is called fails the test.
  const grader = { grade: () => Promise.reject(new Error("no check expected")) };
  const grading = new GradingService({ exercises: new Map(), quizzes: new Map(quizList.map((q) => [q.id, q])), grader, sessions, store });
  const routes = quizRoutes({
    grading,
    signer,
    cookies: { owner: "shipshape_owner", instructor: "shipshape_instructor", secure: false },
    clientKey: () => "198.51.100.7",
  });
  // null: a browser without an owner cookie.
  const answer = async (body: unknown, ownerId: string | null = "owner-1", id = quiz.id) => {
    const text = JSON.stringify(body);
    const req = Object.assign(Readable.from([Buffer.from(text)]), {
      headers: { "content-length": String(Buffer.byteLength(text)) },
      socket: {},
    }) as unknown as IncomingMessage;
    const sent: { status?: number; body?: unknown; headers: Record<string, string> } = { headers: {} };
    const res = {
      setHeader: (name: string, value: string) => void (sent.headers[name.toLowerCase()] = value),
      writeHead: (status: number) => {
        sent.status = status;
        return res;
      },
      end: (chunk: string) => void (sent.body = JSON.parse(chunk)),
    } as unknown as ServerResponse;
    try {
      await routes["POST /api/quizzes/:id/answer"]!(req, res, ownerId ?? undefined, { id });
    } catch (e) {
      throw Object.assign(e as Error, { sent });
    }
    return sent;
  };
  return { store, signer, answer };
}

describe("POST /api/quizzes/:id/answer", () => {
  it("judges the answer on the server and explains, right or wrong", async () => {
    const { answer } = setup();
    await expect(answer({ choice: 0 })).resolves.toMatchObject({ status: 200, body: { quizId: quiz.id, choice: 0, correct: false, explanation: quiz.explanation } });
    await expect(answer({ choice: 2 })).resolves.toMatchObject({ status: 200, body: { correct: true } });
  });

  it("records each answer with the learner's progress, as quiz:<id> / answer", async () => {
    const { answer, store } = setup({ sessionId: "s1", workshopId: "w1" });
    await answer({ choice: 1 });
    await answer({ choice: 2 });
    const rows = store.db.prepare("SELECT owner_id, session_id, workshop_id, exercise_id, task_id, passed, message FROM results ORDER BY id").all();
    expect(rows).toEqual([
      { owner_id: "owner-1", session_id: "s1", workshop_id: "w1", exercise_id: "quiz:cmd-vs-entrypoint", task_id: "answer", passed: 0, message: 'Answered "Pavlos": not right.' },
      { owner_id: "owner-1", session_id: "s1", workshop_id: "w1", exercise_id: "quiz:cmd-vs-entrypoint", task_id: "answer", passed: 1, message: 'Answered "Hello Pavlos": right.' },
    ]);
  });

  it("gives a browser without an owner cookie one, so a reading-only page can keep its answers", async () => {
    const { answer, signer, store } = setup();
    const sent = await answer({ choice: 2 }, null);
    const cookie = sent.headers["set-cookie"] ?? "";
    const owner = signer.verify(decodeURIComponent(/shipshape_owner=([^;]+)/.exec(cookie)?.[1] ?? ""));
    expect(owner).toBeTruthy();
    expect(await store.results.progressOf(owner!)).toMatchObject([{ exerciseId: "quiz:cmd-vs-entrypoint", passed: true, attempts: 1 }]);
  });

  it("refuses an unknown quiz, a choice that is not an option, and a malformed body", async () => {
    const { answer, store } = setup();
    await expect(answer({ choice: 0 }, "owner-1", "no-such-quiz")).rejects.toMatchObject({ code: "not_found" });
    await expect(answer({ choice: 3 })).rejects.toMatchObject({ code: "bad_request", userMessage: "Choose one of the 3 options." });
    await expect(answer({ choice: "2" })).rejects.toThrow();
    await expect(answer({ choice: 2, correct: true })).rejects.toThrow();
    expect(await store.results.progressOf("owner-1")).toEqual([]);
  });

  it(`takes at most ${QUIZ_ATTEMPTS_PER_QUIZ} answers to one quiz from one learner, and says so`, async () => {
    const { answer, store } = setup();
    for (let i = 0; i < QUIZ_ATTEMPTS_PER_QUIZ; i++) await answer({ choice: i % 2 });
    const refused = await answer({ choice: 2 }).catch((e: unknown) => e);
    expect(refused).toMatchObject({
      code: "limit_reached",
      fields: { rule: "quiz_attempts" },
      userMessage: expect.stringContaining(`You have answered this question ${QUIZ_ATTEMPTS_PER_QUIZ} times, the most one learner may`),
    });
    expect(await store.results.progressOf("owner-1")).toMatchObject([{ passed: false, attempts: QUIZ_ATTEMPTS_PER_QUIZ }]);
    // Another learner is not affected.
    await expect(answer({ choice: 2 }, "owner-2")).resolves.toMatchObject({ status: 200 });
  });

  it("limits answers per client address, so dropping the cookie does not help, and gives a refused browser no identity", async () => {
    const { answer } = setup();
    let refused: (Error & { sent?: { headers: Record<string, string> } }) | undefined;
    let answered = 0;
    for (let i = 0; i < 400 && !refused; i++) {
      refused = await answer({ choice: 0 }, null).then(
        () => void answered++,
        (e: Error) => e,
      );
    }
    // The bucket refills (5 a second) while the loop runs, so a slow machine gets a few more.
    expect(answered).toBeGreaterThanOrEqual(QUIZ_ANSWERS_PER_ADDRESS.capacity);
    expect(refused).toMatchObject({ code: "rate_limited", fields: { rule: "quiz_answers" } });
    expect(refused?.sent?.headers["set-cookie"]).toBeUndefined();
  });

  it("limits how fast one browser may answer, so a script cannot fill the results table", async () => {
    // Spread over several quizzes, so the per-quiz attempt limit is not what stops it.
    const quizzes = Array.from({ length: 4 }, (_, i) => ({ ...quiz, id: `quiz-${i}` }));
    const { answer } = setup(undefined, quizzes);
    for (let i = 0; i < QUIZ_ANSWERS.capacity; i++) await answer({ choice: 0 }, "owner-1", quizzes[i % 4]!.id);
    const refused = await answer({ choice: 0 }, "owner-1", "quiz-3").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ShipshapeError);
    expect(refused).toMatchObject({ code: "rate_limited", fields: { rule: "quiz_answers" } });
  });
});

describe("quiz progress", () => {
  it("is passed once answered right, and only then tells the right option and why", () => {
    const quizzes = new Map([[quiz.id, quiz]]);
    expect(quizProgress(quizzes, [])).toEqual([
      { quizId: quiz.id, lesson: quiz.lesson, passed: false, attempts: 0, choice: null, explanation: null },
    ]);
    const wrong = { exerciseId: "quiz:cmd-vs-entrypoint", taskId: "answer", passed: false, attempts: 1, lastAt: 1, lastMessage: "x" };
    expect(quizProgress(quizzes, [wrong])[0]).toMatchObject({ passed: false, attempts: 1, choice: null, explanation: null });
    expect(quizProgress(quizzes, [{ ...wrong, passed: true, attempts: 2 }])[0]).toMatchObject({
      passed: true,
      attempts: 2,
      choice: 2,
      explanation: quiz.explanation,
    });
  });

  it("ignores exercise results with the same name", () => {
    const exerciseRow = { exerciseId: "cmd-vs-entrypoint", taskId: "answer", passed: true, attempts: 1, lastAt: 1, lastMessage: "x" };
    expect(quizProgress(new Map([[quiz.id, quiz]]), [exerciseRow])[0]?.passed).toBe(false);
  });
});
