import { describe, expect, it } from "vitest";
import type { LearnerProgress } from "../../../contracts/progress-api.ts";
import { describeCompletion, lessonCompletion } from "../../../src/client/progress/graded-progress.ts";

function exercise(id: string, lesson: string, tasks: Array<[passed: boolean, attempts: number]>) {
  return {
    exerciseId: id,
    lesson,
    passed: tasks.every(([passed]) => passed),
    tasks: tasks.map(([passed, attempts], i) => ({ taskId: `t${i}`, passed, attempts, lastMessage: null })),
  };
}

const progress = (...exercises: LearnerProgress["exercises"]): LearnerProgress => ({ exercises, quizzes: [] });

describe("lesson completion from the server's progress", () => {
  it("is done only when every exercise of the lesson passed", () => {
    const p = progress(exercise("a", "ports", [[true, 1], [true, 2]]), exercise("b", "ports", [[true, 1]]), exercise("c", "other", [[false, 0]]));
    expect(lessonCompletion(p, "ports")).toEqual({ state: "done", exercises: 2, passed: 2 });
    expect(describeCompletion(lessonCompletion(p, "ports")!)).toBe("Done: all 2 exercises passed");
  });

  it("is started once any exercise was checked, even if nothing passed yet", () => {
    const p = progress(exercise("a", "ports", [[false, 1], [false, 1]]), exercise("b", "ports", [[false, 0]]));
    expect(lessonCompletion(p, "ports")).toEqual({ state: "started", exercises: 2, passed: 0 });
    expect(describeCompletion(lessonCompletion(p, "ports")!)).toBe("0 of 2 exercises passed");
  });

  it("counts an exercise only when all its tasks passed", () => {
    const p = progress(exercise("a", "ports", [[true, 1], [false, 1]]), exercise("b", "ports", [[true, 1]]));
    expect(lessonCompletion(p, "ports")).toEqual({ state: "started", exercises: 2, passed: 1 });
  });

  it("has nothing to say about a lesson without exercises (the manual tick applies there)", () => {
    expect(lessonCompletion(progress(exercise("a", "ports", [[true, 1]])), "reading-only")).toBeUndefined();
  });

  it("is not started before any check", () => {
    expect(lessonCompletion(progress(exercise("a", "ports", [[false, 0]])), "ports")).toEqual({ state: "none", exercises: 1, passed: 0 });
    expect(describeCompletion({ state: "done", exercises: 1, passed: 1 })).toBe("Done: exercise passed");
  });
});
