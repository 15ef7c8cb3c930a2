/**
 * A port preview in a real browser, with nothing configured: the lesson's port link opens the app on
 * its own origin, `http://p8080-<session>.localhost:<port>/` (Chromium resolves every *.localhost
 * name to loopback by itself), where the course's cookies never arrive and the course's API cannot
 * be read.
 */
import type { Browser, BrowserContext, Page, Request } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { endSession, launchBrowser, newContext, readyTerminal, SANDBOX_START_TIMEOUT_MS, startServer, typeLine, visit, type RunningServer } from "./harness.ts";

describe("port preview in the browser", () => {
  let server: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let course: string;
  /** Every request the browser made, with the headers it really sent (cookies included). */
  const sent: Array<{ url: string; cookie: string }> = [];

  beforeAll(async () => {
    server = await startServer();
    // The course as its default public URL names it.
    course = `http://localhost:${server.port}`;
    browser = await launchBrowser();
    context = await newContext(browser, course);
    context.on("request", (request: Request) => {
      void request.allHeaders().then(
        (headers) => sent.push({ url: request.url(), cookie: headers.cookie ?? "" }),
        () => undefined,
      );
    });
    page = await context.newPage();
  });

  afterAll(async () => {
    if (page) await endSession(page);
    await browser?.close();
    await server?.stop();
  });

  it(
    "opens the lesson's port link on the app's own *.localhost origin, without the course's cookies",
    async () => {
      await visit(page, "/lessons/ports/");
      await readyTerminal(page, "main");
      await typeLine(page, "main", "docker run -d --name web -p 8080:80 nginx");
      const link = page.locator('.ports-item[data-port="8080"] a.ports-link');
      await link.waitFor({ timeout: 120_000 });
      const { sessionId } = (await page.evaluate(() => fetch("/api/sessions/current/ports").then((r) => r.json()))) as { sessionId: string };
      const previewOrigin = `http://p8080-${sessionId}.localhost:${server.port}`;

      // nginx may need a moment after `docker run` returns; the learner would reload.
      let popup: Page | undefined;
      for (let attempt = 0; attempt < 20; attempt++) {
        const opening = context.waitForEvent("page");
        await link.click();
        popup = await opening;
        await popup.waitForLoadState("load");
        if ((await popup.title()) === "Welcome to nginx!") break;
        await popup.close();
        popup = undefined;
        await page.waitForTimeout(1_000);
      }
      if (!popup) throw new Error("nginx's page never appeared through the preview link");
      expect(popup.url()).toBe(`${previewOrigin}/`);
      expect(await popup.evaluate(() => location.origin)).toBe(previewOrigin);

      // The course's owner cookie went to the course, never to the preview host.
      const toCourse = sent.filter((r) => r.url.startsWith(`${course}/`));
      const toPreview = sent.filter((r) => r.url.startsWith(`${previewOrigin}/`));
      expect(toCourse.some((r) => r.cookie.includes("shipshape_owner="))).toBe(true);
      expect(toPreview.length).toBeGreaterThan(0);
      expect(toPreview.filter((r) => r.cookie.includes("shipshape_owner="))).toEqual([]);

      // The app's JavaScript cannot read the course's API as the learner (another origin, no CORS)...
      const fromApp = await popup.evaluate(
        (api) => fetch(api, { credentials: "include" }).then((r) => `read ${r.status}`, () => "blocked"),
        `${course}/api/sessions/current/ports`,
      );
      expect(fromApp).toBe("blocked");
      // ...which the course's own page can.
      expect(await page.evaluate(() => fetch("/api/sessions/current/ports").then((r) => `read ${r.status}`))).toBe("read 200");

      // Nor can it toss a cookie onto the course's host name.
      await popup.evaluate(() => {
        document.cookie = "shipshape_owner=forged; Domain=localhost; Path=/";
        document.cookie = "tossed=1; Domain=localhost; Path=/";
      });
      const courseCookies = await context.cookies(course);
      expect(courseCookies.map((c) => `${c.name}=${c.value}`).filter((c) => c.includes("forged") || c.startsWith("tossed="))).toEqual([]);
      await popup.close();
    },
    SANDBOX_START_TIMEOUT_MS + 180_000,
  );
});
