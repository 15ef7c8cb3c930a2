import type { Exercise } from "../../../contracts/content/exercise-schema.ts";
import type { CatalogEntry, ExerciseColumn, MemberStatus, WorkshopSummary } from "../../../contracts/workshop-api.ts";
import type { CatalogLesson } from "../content/lesson-catalog.ts";
import { ShipshapeError } from "../errors.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { WorkshopRecord, WorkshopStore } from "../store/workshop-store.ts";

/**
 * Finding a workshop and describing it: the summary instructors see, the grid's exercise columns
 * and the lesson titles. Shared by the service, the admission queue, the dashboard and the gradebook.
 */
export class WorkshopViews {
  private readonly store: WorkshopStore;
  private readonly sessions: Pick<SessionManager, "reserveCounts">;
  private readonly exercises: ReadonlyMap<string, Exercise>;
  private readonly lessons: readonly CatalogLesson[];

  constructor(deps: {
    store: WorkshopStore;
    sessions: Pick<SessionManager, "reserveCounts">;
    exercises: ReadonlyMap<string, Exercise>;
    lessons: readonly CatalogLesson[];
  }) {
    this.store = deps.store;
    this.sessions = deps.sessions;
    this.exercises = deps.exercises;
    this.lessons = deps.lessons;
  }

  async require(id: string): Promise<WorkshopRecord> {
    const w = await this.store.workshops.get(id);
    if (!w) throw new ShipshapeError("not_found", "There is no such workshop.");
    return w;
  }

  async requireLive(id: string): Promise<WorkshopRecord> {
    const w = await this.require(id);
    if (w.endedAt !== null) throw new ShipshapeError("bad_request", "This workshop has ended; it can no longer be changed.");
    return w;
  }

  /** The lessons an instructor can choose, each with its exercises. */
  lessonCatalog(): CatalogEntry[] {
    return this.lessons.map((l) => ({
      ...l,
      exercises: [...this.exercises.values()].filter((e) => e.lesson === l.slug).map((e) => ({ id: e.id, title: e.title })),
    }));
  }

  knowsLesson(slug: string): boolean {
    return this.lessons.some((l) => l.slug === slug);
  }

  async summary(w: WorkshopRecord): Promise<WorkshopSummary> {
    const counts: Record<MemberStatus, number> = { queued: 0, admitted: 0, away: 0, left: 0 };
    for (const m of await this.store.members.ofWorkshop(w.id)) counts[m.status]++;
    const reserve = this.sessions.reserveCounts(w.id);
    return {
      id: w.id,
      ownerInstructorId: w.ownerInstructorId,
      code: w.code,
      joinPath: `/join/${w.code}`,
      title: w.title,
      lessons: w.lessons.map((slug) => ({ slug, title: this.lessonTitle(slug) })),
      capacity: w.capacity,
      durationMinutes: Math.round(w.durationMs / 60_000),
      createdAt: w.createdAt,
      startedAt: w.startedAt,
      endsAt: w.endsAt,
      endedAt: w.endedAt,
      endedReason: w.endedReason,
      warm: { target: w.endedAt === null ? w.warmTarget : 0, ...reserve },
      counts,
    };
  }

  /** The grid's columns: the exercises of the workshop's lessons, in the lessons' order. */
  columns(w: WorkshopRecord): ExerciseColumn[] {
    const all = [...this.exercises.values()];
    return w.lessons.flatMap((slug) =>
      all
        .filter((e) => e.lesson === slug)
        .map((e) => ({ id: e.id, lesson: slug, title: e.title, tasks: e.tasks.map((t) => ({ id: t.id, title: t.title })) })),
    );
  }

  lessonTitle(slug: string): string {
    return this.lessons.find((l) => l.slug === slug)?.title ?? slug;
  }
}
