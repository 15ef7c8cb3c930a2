import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, newContext, startServer, visit, type RunningServer } from "./harness.ts";

const SECRET = "browser-test-instructor-accounts-secret";

describe("inviting an instructor from the instructor home page", () => {
  let server: RunningServer;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  let admin: Page;
  let grace: Page;

  beforeAll(async () => {
    server = await startServer({ env: { SHIPSHAPE_ADMIN_SECRET: SECRET, SHIPSHAPE_WARM_POOL: "0" } });
    browser = await launchBrowser();
    for (let i = 0; i < 2; i++) contexts.push(await newContext(browser, server.url));
    [admin, grace] = (await Promise.all(contexts.map((c) => c.newPage()))) as [Page, Page];
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("lets the admin invite by name and role, copy a one-time link that signs the person in as themselves, and disable them", async () => {
    await visit(admin, "/instructor/");
    await admin.getByLabel("Instructor secret").fill(SECRET);
    await admin.getByLabel("Instructor secret").press("Enter");
    await admin.getByRole("heading", { name: "Workshops", level: 1 }).waitFor();
    await expect.poll(() => admin.locator("[data-who]").textContent(), { timeout: 10_000 }).toBe("Signed in as Admin (admin)");

    // Keyboard only: name, role, Create.
    await admin.getByRole("heading", { name: "Invite an instructor" }).waitFor();
    await admin.getByLabel("Name", { exact: true }).fill("Grace Hopper");
    await admin.getByLabel("Role").selectOption("instructor");
    await admin.getByLabel("Role").press("Tab");
    await admin.keyboard.press("Enter");
    const linkField = admin.getByLabel(/One-time link/);
    await expect.poll(() => linkField.inputValue(), { timeout: 10_000 }).toMatch(new RegExp(`^${server.url}/instructor/#invite=[A-Za-z0-9_-]{43}$`));
    const link = await linkField.inputValue();
    await admin.getByRole("button", { name: "Copy link" }).click();
    await expect.poll(() => admin.evaluate(() => navigator.clipboard.readText())).toBe(link);

    // The invited person opens it, sees whom it signs in as, and confirms.
    await visit(grace, link);
    await expect.poll(() => grace.locator("[data-invite-text]").textContent(), { timeout: 10_000 }).toContain("signs you in as Grace Hopper, an instructor");
    expect(new URL(grace.url()).hash).toBe(""); // the token left the address bar
    await grace.getByRole("button", { name: "Accept and sign in" }).click();
    await grace.getByRole("heading", { name: "Workshops", level: 1 }).waitFor();
    await expect.poll(() => grace.locator("[data-who]").textContent()).toBe("Signed in as Grace Hopper");
    expect(await grace.getByRole("heading", { name: "Invite an instructor" }).isVisible()).toBe(false);

    // The same link a second time is refused in words.
    const again = await browser.newPage();
    await visit(again, link);
    await expect.poll(() => again.locator("[data-invite-error]").textContent(), { timeout: 10_000 }).toContain("already used");
    await again.close();

    // Disabled: Grace's next request finds her signed out.
    await visit(admin);
    // The account exists once the link is used.
    await expect.poll(() => admin.getByRole("row", { name: /Grace Hopper/ }).textContent(), { timeout: 10_000 }).toContain("Active");
    admin.once("dialog", (dialog) => void dialog.accept());
    await admin.getByRole("button", { name: "Disable Grace Hopper" }).click();
    await expect.poll(() => admin.locator("[data-people-status]").textContent()).toBe("Grace Hopper is disabled.");
    await visit(grace);
    await grace.getByLabel("Instructor secret").waitFor({ timeout: 10_000 });
  });
});
