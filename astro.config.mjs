// @ts-check
import { defineConfig } from "astro/config";
import mdx from "@astrojs/mdx";

// A static site: the sandbox server serves dist/ together with the API and the WebSockets
// on one origin, so the pages need no server-side rendering.
export default defineConfig({
  output: "static",
  trailingSlash: "ignore",
  build: { format: "directory" },
  integrations: [mdx()],
  markdown: {
    shikiConfig: { themes: { light: "github-light", dark: "github-dark" } },
  },
});
