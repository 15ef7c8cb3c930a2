import { describe, expect, it } from "vitest";
import { lessonSchema } from "../../../src/schemas/lesson.ts";

const good = {
  title: "Your first containers",
  summary: "Run, list, stop and remove containers.",
  order: 1,
  duration: 20,
  objectives: ["Run a container in the background"],
};

function issuesOf(frontmatter: Record<string, unknown>) {
  const result = lessonSchema.safeParse(frontmatter);
  if (result.success) throw new Error("expected the frontmatter to be rejected");
  return result.error.issues.map((issue) => ({ field: issue.path.join("."), message: issue.message }));
}

describe("lesson frontmatter schema", () => {
  it("accepts a good frontmatter and fills in the defaults", () => {
    expect(lessonSchema.parse(good)).toEqual({
      ...good,
      terminals: ["main"],
      sandboxPanel: "open",
      files: [],
      exercises: [],
      draft: false,
    });
  });

  it("takes the sandbox panel as open, closed or off, and says so when it is anything else", () => {
    expect(lessonSchema.parse({ ...good, sandboxPanel: "closed" }).sandboxPanel).toBe("closed");
    expect(issuesOf({ ...good, sandboxPanel: "hidden" })).toEqual([{ field: "sandboxPanel", message: "must be `open`, `closed` or `off`." }]);
  });

  it("accepts files given by content or by from, and several terminals", () => {
    const lesson = lessonSchema.parse({
      ...good,
      terminals: ["main", "logs"],
      files: [
        { path: "/root/app/Dockerfile", content: "FROM debian:bookworm-slim\n" },
        { path: "/root/app/app.py", from: "./files/app.py" },
      ],
      exercises: ["run-hello-world"],
    });
    expect(lesson.files).toHaveLength(2);
    expect(lesson.terminals).toEqual(["main", "logs"]);
  });

  it("names a missing field and says how to add it", () => {
    const { duration: _omitted, ...withoutDuration } = good;
    expect(issuesOf(withoutDuration)).toEqual([
      { field: "duration", message: expect.stringMatching(/is missing.*`duration: 15`/) },
    ]);
  });

  it("names a field of the wrong type, with the value it got", () => {
    expect(issuesOf({ ...good, order: "first" })).toEqual([
      { field: "order", message: expect.stringMatching(/whole number.*got the text "first"/) },
    ]);
  });

  it("suggests the right name for a misspelt field, along with the other mistakes", () => {
    const issues = issuesOf({ ...good, order: 1.5, objectivs: ["typo"] });
    expect(issues).toContainEqual({ field: "objectivs", message: expect.stringContaining("did you mean `objectives`?") });
    expect(issues).toContainEqual({ field: "order", message: expect.stringContaining("whole number") });
  });

  it("rejects terminal names the protocol would refuse", () => {
    expect(issuesOf({ ...good, terminals: ["Main Shell"] })).toEqual([
      { field: "terminals.0", message: expect.stringContaining("lowercase letters, digits and dashes") },
    ]);
  });

  it("rejects a file with a relative path, or with both content and from", () => {
    expect(issuesOf({ ...good, files: [{ path: "app/Dockerfile", content: "x" }] })).toEqual([
      { field: "files.0.path", message: expect.stringContaining("absolute path") },
    ]);
    expect(issuesOf({ ...good, files: [{ path: "/root/a", content: "x", from: "./a" }] })).toEqual([
      { field: "files.0", message: expect.stringContaining("exactly one of `content`") },
    ]);
  });

  it("describes every field, so the schema is the authoring reference", () => {
    const shape = lessonSchema.toJSONSchema({ io: "input" }) as { properties?: Record<string, { description?: string }> };
    const fields = Object.entries(shape.properties ?? {});
    expect(fields.map(([name]) => name).sort()).toEqual(
      ["draft", "duration", "exercises", "files", "objectives", "order", "sandboxPanel", "summary", "terminals", "title"],
    );
    for (const [name, field] of fields) expect(field.description, name).toBeTruthy();
  });
});
