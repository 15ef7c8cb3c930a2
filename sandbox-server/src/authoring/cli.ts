import path from "node:path";
import { newExercise, newLesson, ScaffoldError } from "./scaffold.ts";

/** `./shipshape new lesson <slug>` / `./shipshape new exercise <id> --lesson <slug>`. */
function main(argv: string[]): number {
  const [kind, name, ...rest] = argv;
  const contentDir = path.resolve(process.env.SHIPSHAPE_CONTENT_DIR ?? "content");
  const lessonFlag = rest.indexOf("--lesson");
  const written =
    kind === "lesson"
      ? newLesson(contentDir, name)
      : kind === "exercise"
        ? newExercise(contentDir, name, lessonFlag >= 0 ? rest[lessonFlag + 1] : undefined)
        : undefined;
  if (!written) {
    process.stderr.write("usage: ./shipshape new lesson <slug> | ./shipshape new exercise <id> --lesson <slug>\n");
    return 2;
  }
  process.stdout.write(`Created:\n${written.files.map((f) => `  ${path.relative(process.cwd(), f)}`).join("\n")}\nNext:\n${written.next.map((n) => `  ${n}`).join("\n")}\n`);
  return 0;
}

try {
  process.exit(main(process.argv.slice(2)));
} catch (e) {
  if (!(e instanceof ScaffoldError)) throw e;
  process.stderr.write(e.message + "\n");
  process.exit(1);
}
