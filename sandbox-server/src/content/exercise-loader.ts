import { loadYamlFolder, parseYamlFile } from "./content-files.ts";
import { exerciseSchema, type Exercise } from "../../../contracts/content/exercise-schema.ts";

/**
 * Reads every content/exercises/*.yaml. An author's mistake stops the server (and the site
 * build) with the file, the field and what to write instead.
 */
export function loadExercises(dir: string): Map<string, Exercise> {
  return loadYamlFolder(dir, parseExercise);
}

export function parseExercise(text: string, file: string): Exercise {
  return parseYamlFile(text, file, exerciseSchema, "exercise", "contracts/content/exercise-schema.ts");
}
