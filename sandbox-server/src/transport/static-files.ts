import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import path from "node:path";
import type { IncomingMessage, ServerResponse } from "node:http";

const types: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
  ".xml": "application/xml",
  ".wasm": "application/wasm",
};

/** Serves the built site. Paths are resolved inside `root` only; directories serve index.html. */
export async function serveStatic(req: IncomingMessage, res: ServerResponse, root: string, pathname: string): Promise<void> {
  const base = path.resolve(root);
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    decoded = "/";
  }
  let file = path.resolve(base, "." + path.posix.normalize(decoded));
  if (file !== base && !file.startsWith(base + path.sep)) return notFound(res, base);
  let info = await stat(file).catch(() => null);
  if (info?.isDirectory()) {
    file = path.join(file, "index.html");
    info = await stat(file).catch(() => null);
  }
  if (!info?.isFile()) return notFound(res, base);
  const ext = path.extname(file);
  // Astro fingerprints everything under /_astro/, so it can be cached for good.
  const immutable = pathname.startsWith("/_astro/");
  res.writeHead(200, {
    "content-type": types[ext] ?? "application/octet-stream",
    "content-length": info.size,
    "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
    "x-content-type-options": "nosniff",
    ...(ext === ".html" ? { "x-frame-options": "SAMEORIGIN", "referrer-policy": "same-origin" } : {}),
  });
  if (req.method === "HEAD") return void res.end();
  createReadStream(file).pipe(res);
}

async function notFound(res: ServerResponse, base: string): Promise<void> {
  const page = path.join(base, "404.html");
  const info = await stat(page).catch(() => null);
  res.writeHead(404, { "content-type": "text/html; charset=utf-8" });
  if (info?.isFile()) createReadStream(page).pipe(res);
  else res.end("<!doctype html><title>Not found</title><h1>Not found</h1>");
}
