/**
 * The learner's graded progress (`GET /api/progress`), as the server recorded it. Passes come only
 * from the server's own verdicts (a graded Check, a judged quiz answer); nothing the page sends can
 * report one.
 */

export interface ExerciseTaskProgress {
  taskId: string;
  /** Passed at least once. */
  passed: boolean;
  attempts: number;
  lastMessage: string | null;
}

export interface ExerciseProgress {
  exerciseId: string;
  lesson: string;
  /** Every task passed (each at least once). */
  passed: boolean;
  tasks: ExerciseTaskProgress[];
}

export interface QuizProgress {
  quizId: string;
  lesson: string;
  /** Answered right at least once. */
  passed: boolean;
  attempts: number;
  /** Once passed: the right option and why, so a reload shows the answered question. */
  choice: number | null;
  explanation: string | null;
}

export interface LearnerProgress {
  exercises: ExerciseProgress[];
  quizzes: QuizProgress[];
}
