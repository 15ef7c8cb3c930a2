/**
 * Places the lesson's frontmatter `files` in the sandbox once it is ready: once per sandbox and
 * lesson, so a reload does not overwrite what the learner changed since.
 */
import { on } from "../common/bus.ts";
import { sandbox } from "./sandbox-session.ts";

export interface LessonFilesManifest {
  lesson: string;
  files: Array<{ path: string; content: string }>;
}

const storageKey = (sessionId: string, lesson: string) => `shipshape:files:${sessionId}:${lesson}`;

export function placeLessonFiles(manifest: LessonFilesManifest): void {
  if (manifest.files.length === 0) return;
  let busy = false;
  on("shipshape:sandbox", async (status) => {
    if (status.state !== "ready" || busy) return;
    busy = true;
    try {
      const { sessionId } = await sandbox.credentials();
      const key = storageKey(sessionId, manifest.lesson);
      if (localStorage.getItem(key)) return;
      for (const file of manifest.files) await sandbox.writeFile(file.path, file.content);
      localStorage.setItem(key, String(Date.now()));
    } catch (error) {
      console.warn("[shipshape] could not place the lesson's files in the sandbox", error);
    } finally {
      busy = false;
    }
  });
}
