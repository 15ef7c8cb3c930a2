// @ts-check
import { defineConfig } from "astro/config";
import mdx from "@astrojs/mdx";

// In `astro dev` (port 4322), API and terminal requests go to a sandbox server running beside it
// (`npm run serve`, port 4321, or SHIPSHAPE_SERVER). The proxy keeps the Host header, so the
// server's same-origin check passes without extra configuration.
const sandboxServer = process.env.SHIPSHAPE_SERVER ?? "http://127.0.0.1:4321";

// A static site: the sandbox server serves dist/ together with the API and the WebSockets
// on one origin, so the pages need no server-side rendering.
export default defineConfig({
  output: "static",
  trailingSlash: "ignore",
  build: { format: "directory" },
  // No smart punctuation: `--name` in a <Run> must stay two hyphens, not become an en dash.
  integrations: [mdx({ smartypants: false })],
  markdown: {
    shikiConfig: { themes: { light: "github-light", dark: "github-dark" } },
  },
  server: { port: 4322 },
  vite: {
    server: {
      proxy: {
        "/api": { target: sandboxServer },
        "/ws": { target: sandboxServer, ws: true },
      },
    },
  },
});
