import { DatabaseSync } from "node:sqlite";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteStore as Store } from "../../../sandbox-server/src/store/store.ts";
import { SqliteWorkshopStore as WorkshopStore } from "../../../sandbox-server/src/store/workshop-store.ts";
import { csvField, toCsv } from "../../../sandbox-server/src/workshops/csv.ts";
import { InstructorAuth, INSTRUCTOR_SESSION_MS, loadAdminSecret } from "../../../sandbox-server/src/workshops/instructor-auth.ts";
import { JOIN_CODE_ALPHABET, newJoinCode, normalizeJoinCode } from "../../../sandbox-server/src/workshops/join-code.ts";
import { loadLessonCatalog } from "../../../sandbox-server/src/content/lesson-catalog.ts";
import type { ExerciseColumn } from "../../../contracts/workshop-api.ts";
import { gradebook } from "../../../sandbox-server/src/workshops/gradebook.ts";
import { cellFor, isIdle, type RecordedVerdict } from "../../../sandbox-server/src/workshops/grid-cells.ts";
import { cleanText } from "../../../sandbox-server/src/workshops/workshop-service.ts";

const exercise: ExerciseColumn = {
  id: "run-and-stop",
  lesson: "first-containers",
  title: "Start, name and stop containers",
  tasks: [
    { id: "web-stopped", title: "web stopped" },
    { id: "hello-ran", title: "hello ran" },
  ],
};

/** One press of Check at `at`: a verdict per task, as the grader stores them. */
const check = (at: number, passed: Record<string, boolean>): RecordedVerdict[] =>
  Object.entries(passed).map(([taskId, ok]) => ({ exerciseId: "run-and-stop", taskId, passed: ok, at }));

describe("join codes", () => {
  it("are six characters without the look-alikes 0, O, 1 and I", () => {
    expect(JOIN_CODE_ALPHABET).toHaveLength(32);
    for (const c of "0O1I") expect(JOIN_CODE_ALPHABET).not.toContain(c);
    for (let i = 0; i < 200; i++) expect(newJoinCode()).toMatch(/^[A-HJ-NP-Z2-9]{6}$/);
  });

  it("use every symbol of the alphabet with no bias (one byte's low five bits each)", () => {
    expect(newJoinCode(() => Uint8Array.from([0, 31, 32, 255, 8, 40]))).toBe("A9A9JJ");
  });

  it("forgive case, spaces and dashes, and refuse what cannot be a code", () => {
    expect(normalizeJoinCode(" k7q-x2m ")).toBe("K7QX2M");
    expect(normalizeJoinCode("K7QX2")).toBeUndefined();
    expect(normalizeJoinCode("K7QX2O")).toBeUndefined(); // O is never in a code
    expect(normalizeJoinCode("K7QX21")).toBeUndefined();
  });
});

describe("CSV for spreadsheets", () => {
  it("quotes fields holding quotes, commas or line breaks (RFC 4180)", () => {
    expect(csvField("plain")).toBe("plain");
    expect(csvField("Doe, Jo")).toBe('"Doe, Jo"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField("two\nlines")).toBe('"two\nlines"');
    expect(toCsv(["a", "b"], [["1", "x,y"]])).toBe('a,b\r\n1,"x,y"\r\n');
  });

  it("defuses formulas: = + - @ (also after spaces), tab and carriage return get a leading apostrophe", () => {
    expect(csvField("=1+1")).toBe("'=1+1");
    expect(csvField("+33 6 12")).toBe("'+33 6 12");
    expect(csvField("-2")).toBe("'-2");
    expect(csvField("@SUM(A1:A9)")).toBe("'@SUM(A1:A9)");
    expect(csvField("  =cmd")).toBe("'  =cmd");
    expect(csvField("\t=1")).toBe("'\t=1");
    expect(csvField('=HYPERLINK("http://x","y")')).toBe('"\'=HYPERLINK(""http://x"",""y"")"');
    expect(csvField("Zoë = great")).toBe("Zoë = great");
  });
});

describe("the progress grid", () => {
  it("is not started without a check, in progress after one, passed when every task passed once", () => {
    expect(cellFor(exercise, []).state).toBe("not_started");
    const first = check(1000, { "web-stopped": true, "hello-ran": false });
    expect(cellFor(exercise, first)).toMatchObject({ state: "in_progress", passedTasks: 1, tasks: 2, checks: 1, failedChecks: 1 });
    // Tasks passed in different checks count: the exercise is passed at the second check.
    const second = check(2000, { "web-stopped": false, "hello-ran": true });
    expect(cellFor(exercise, [...first, ...second])).toMatchObject({ state: "passed", passedAt: 2000, checks: 2, stuck: false });
  });

  it("calls a learner stuck after three failed checks in a row without progress, and not after progress", () => {
    const fails = [1, 2, 3].flatMap((i) => check(i * 1000, { "web-stopped": false, "hello-ran": false }));
    expect(cellFor(exercise, fails.slice(0, 4)).stuck).toBe(false);
    expect(cellFor(exercise, fails)).toMatchObject({ stuck: true, failedSinceProgress: 3 });
    const progress = check(4000, { "web-stopped": true, "hello-ran": false });
    expect(cellFor(exercise, [...fails, ...progress])).toMatchObject({ stuck: false, failedSinceProgress: 0 });
    expect(cellFor(exercise, fails, { idleAfterMs: 1, stuckAfterFailedChecks: 5 }).stuck).toBe(false);
  });

  it("ignores verdicts of other exercises and of tasks that no longer exist", () => {
    const other: RecordedVerdict = { exerciseId: "volume-keeps-data", taskId: "web-stopped", passed: true, at: 1 };
    const renamed: RecordedVerdict = { exerciseId: "run-and-stop", taskId: "old-task", passed: true, at: 2 };
    expect(cellFor(exercise, [other, renamed]).state).toBe("not_started");
  });

  it("marks idle after the idle time without terminal activity", () => {
    const rules = { idleAfterMs: 5 * 60_000, stuckAfterFailedChecks: 3 };
    expect(isIdle(0, 5 * 60_000 - 1, rules)).toBe(false);
    expect(isIdle(0, 5 * 60_000, rules)).toBe(true);
    expect(isIdle(null, 10 ** 12, rules)).toBe(false); // no sandbox: away, not idle
  });

  it("writes one gradebook row per learner and task: first pass time, else last failed check, else nothing", () => {
    const rows = gradebook(
      [
        { name: "Ana", verdicts: [...check(1000, { "web-stopped": false, "hello-ran": true }), ...check(5000, { "web-stopped": true, "hello-ran": true })] },
        { name: "Ben", verdicts: [] },
      ],
      [exercise],
    );
    expect(rows).toEqual([
      { learner: "Ana", exercise: "run-and-stop", task: "web-stopped", verdict: "passed", time: new Date(5000).toISOString() },
      { learner: "Ana", exercise: "run-and-stop", task: "hello-ran", verdict: "passed", time: new Date(1000).toISOString() },
      { learner: "Ben", exercise: "run-and-stop", task: "web-stopped", verdict: "not attempted", time: "" },
      { learner: "Ben", exercise: "run-and-stop", task: "hello-ran", verdict: "not attempted", time: "" },
    ]);
  });
});

describe("display names and titles", () => {
  it("keep printable text in one line, trimmed, and refuse empty or overlong ones", () => {
    expect(cleanText("  Ana \n  Lopez ", "your name", 40)).toBe("Ana Lopez");
    expect(cleanText("Ana\u202e\u200bX", "your name", 40)).toBe("AnaX"); // bidi override and zero-width space dropped
    expect(() => cleanText("   ", "your name", 40)).toThrow("Enter your name.");
    expect(() => cleanText("x".repeat(41), "your name", 40)).toThrow("Name is limited to 40 characters.");
    expect(() => cleanText("!!!", "your name", 40)).toThrow("at least one letter or digit");
  });
});

describe("instructor sign-in", () => {
  it("accepts the admin secret only, and a cookie that is signed and not expired", async () => {
    let now = 1_000_000;
    const auth = new InstructorAuth("correct horse battery staple", () => now);
    expect(auth.checkSecret("correct horse battery staple")).toBe(true);
    expect(auth.checkSecret("correct horse battery stapl")).toBe(false);
    const { value } = auth.issue();
    expect(await auth.verify(value)).toBe(true);
    expect(await auth.verify(value.replace(/.$/, (c) => (c === "A" ? "B" : "A")))).toBe(false);
    expect(await auth.verify(`instructor:${now + 10 ** 9}.forged`)).toBe(false);
    // Another admin secret (rotated) signs everyone out.
    expect(await new InstructorAuth("another secret entirely", () => now).verify(value)).toBe(false);
    now += INSTRUCTOR_SESSION_MS + 1;
    expect(await auth.verify(value)).toBe(false);
  });

  it("generates a secret into the data dir once (mode 0600) and reads it back afterwards; the environment wins", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "shipshape-admin-"));
    const first = loadAdminSecret(undefined, dir);
    expect(first.source).toBe("generated");
    expect(first.secret.length).toBeGreaterThanOrEqual(20);
    expect(statSync(first.file).mode & 0o777).toBe(0o600);
    expect(readFileSync(first.file, "utf8").trim()).toBe(first.secret);
    expect(loadAdminSecret(undefined, dir)).toEqual({ ...first, source: "file" });
    expect(loadAdminSecret("from-the-environment-123", dir)).toMatchObject({ secret: "from-the-environment-123", source: "env" });
  });
});

const workshop = {
  id: "w1",
  code: "K7QX2M",
  title: "T",
  lessons: ["first-containers"],
  capacity: 5,
  durationMs: 3600_000,
  warmTarget: 0,
  createdAt: 1,
  startedAt: null,
  endsAt: null,
  endedAt: null,
  endedReason: null,
};

describe("the workshop store", () => {
  it("refuses verdicts for a workshop once it has ended, whoever writes them", async () => {
    const store = new Store(":memory:");
    const workshops = new WorkshopStore(store.db);
    await workshops.workshops.insert(workshop);
    const verdict = { ownerId: "o", sessionId: "s", workshopId: "w1", exerciseId: "e", taskId: "t", passed: true, message: "", at: 10 };
    await store.results.insert(verdict);
    await workshops.workshops.end("w1", 20, "test");
    await store.results.insert({ ...verdict, at: 30 });
    await store.results.insert({ ...verdict, workshopId: null, at: 40 }); // outside the workshop: still recorded
    expect((await workshops.results("w1")).map((r) => r.at)).toEqual([10]);
    expect((store.db.prepare("SELECT COUNT(*) AS n FROM results").get() as { n: number }).n).toBe(2);
    store.close();
  });

  it("migrates an existing database without losing anything", async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "shipshape-store-")), "db.sqlite");
    const a = new Store(file);
    const first = new WorkshopStore(a.db);
    await first.workshops.insert({ ...workshop, id: "w" });
    await first.messages.insert("w", "hello", 1);
    a.close();
    const b = new Store(file);
    expect(await new WorkshopStore(b.db).messages.recent("w")).toEqual([{ id: 1, message: "hello", at: 1 }]);
    b.close();
    // Opening twice adds nothing twice: each trigger once, the workshop's among them.
    const triggers = new DatabaseSync(file).prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").all().map((r) => String(r.name));
    expect(triggers.filter((t) => t === "results_frozen_after_workshop_end")).toHaveLength(1);
    expect(new Set(triggers).size).toBe(triggers.length);
  });
});

describe("the lesson catalogue", () => {
  it("lists the published lessons of content/lessons in course order, with their titles", () => {
    const lessons = loadLessonCatalog(path.resolve(import.meta.dirname, "../../../content/lessons"));
    expect(lessons[0]).toMatchObject({ slug: "first-containers", title: "Your first containers", order: 1 });
    expect(lessons.map((l) => l.order)).toEqual([...lessons.map((l) => l.order)].sort((x, y) => x - y));
  });
});
