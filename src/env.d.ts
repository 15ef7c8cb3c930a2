// Astro's ambient types (import.meta.env, astro:content, astro:components) for `tsc`. The
// generated .astro/types.d.ts is deliberately not referenced: it does not exist before the first
// build, and the type check runs first. Code that reads collections types entries itself
// (src/lib/lessons.ts), so it is checked the same way before and after a build.
/// <reference types="astro/client" />
