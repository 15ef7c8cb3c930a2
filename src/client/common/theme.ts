/**
 * Light/dark theme. The first paint is decided by an inline script in <head> (see
 * components/ThemeScript.astro) so there is no flash; this module handles later changes.
 */
import { emit } from "./bus.ts";

export type Theme = "light" | "dark";
export const THEME_STORAGE_KEY = "shipshape:theme";

export function currentTheme(): Theme {
  return document.documentElement.dataset.theme === "dark" ? "dark" : "light";
}

export function storedTheme(): Theme | undefined {
  try {
    const value = localStorage.getItem(THEME_STORAGE_KEY);
    return value === "light" || value === "dark" ? value : undefined;
  } catch {
    return undefined; // Storage disabled: follow the system.
  }
}

export function applyTheme(theme: Theme, { persist }: { persist: boolean }): void {
  document.documentElement.dataset.theme = theme;
  document.documentElement.style.colorScheme = theme;
  if (persist) {
    try {
      localStorage.setItem(THEME_STORAGE_KEY, theme);
    } catch {
      // Not persisted; the toggle still works for this page.
    }
  }
  emit("shipshape:theme", { theme });
}

/** Follow the system setting until the learner picks a theme themselves. */
export function followSystemTheme(): void {
  const query = matchMedia("(prefers-color-scheme: dark)");
  query.addEventListener("change", (event) => {
    if (!storedTheme()) applyTheme(event.matches ? "dark" : "light", { persist: false });
  });
}
