/**
 * The instructor's live dashboard (/instructor/workshop/?id=…). The grid comes from a
 * Server-Sent Events stream (`dashboard` events carry the whole snapshot; the server sends one
 * within a second of a change). Rows and cells are updated in place, so keyboard focus on a
 * Watch button survives updates; new passes and learners who get stuck are announced politely.
 */
import type { Cell, DashboardSnapshot, LearnerRow } from "../../../contracts/workshop-api.ts";
import { ApiError, formatClock, instructorApi } from "./workshop-api.ts";
import { openViewer, type ViewerHandle } from "../terminal/terminal-viewer.ts";

const $ = <T extends HTMLElement>(selector: string) => document.querySelector<T>(selector)!;

export function cellText(cell: Cell): string {
  if (cell.state === "passed") return "Passed";
  if (cell.state === "not_started") return "Not started";
  const base = `In progress, ${cell.passedTasks} of ${cell.tasks} tasks`;
  return cell.stuck ? `${base}; stuck after ${cell.failedSinceProgress} failed checks` : base;
}

function statusText(l: LearnerRow): string {
  switch (l.status) {
    case "admitted":
      return "In";
    case "queued":
      return `Waiting (number ${l.position ?? "?"})`;
    case "away":
      return "Away (sandbox removed)";
    case "left":
      return "Left";
  }
}

function minutesFromNow(at: number): string {
  const minutes = Math.round((at - Date.now()) / 60_000);
  return minutes <= 0 ? "now" : minutes === 1 ? "in 1 minute" : `in ${minutes} minutes`;
}

export function mountDashboard(): void {
  const id = new URLSearchParams(location.search).get("id") ?? "";
  const pageError = $("[data-page-error]");
  const title = $("[data-title]");
  const summary = $("[data-summary]");
  const code = $("[data-code]");
  const joinLink = $<HTMLAnchorElement>("[data-join-link]");
  const copyLink = $<HTMLButtonElement>("[data-copy-link]");
  const copied = $("[data-copied]");
  const controls = $("[data-controls]");
  const capacityForm = $<HTMLFormElement>("[data-capacity-form]");
  const capacityInput = capacityForm.querySelector<HTMLInputElement>("input")!;
  const prewarmForm = $<HTMLFormElement>("[data-prewarm-form]");
  const prewarmInput = prewarmForm.querySelector<HTMLInputElement>("input")!;
  const warmStatus = $("[data-warm-status]");
  const messageForm = $<HTMLFormElement>("[data-message-form]");
  const messageInput = messageForm.querySelector<HTMLInputElement>("input")!;
  const messageStatus = $("[data-message-status]");
  const grades = $<HTMLAnchorElement>("[data-grades]");
  const endButton = $<HTMLButtonElement>("[data-end]");
  const endDialog = $<HTMLDialogElement>("[data-end-dialog]");
  const connection = $("[data-connection]");
  const legend = $("[data-legend]");
  const noLearners = $("[data-no-learners]");
  const gridWrap = $("[data-grid-wrap]");
  const grid = $("[data-grid]");
  const head = $("[data-grid-head]");
  const body = $("[data-grid-body]");
  const announce = $("[data-announce]");
  const sent = $("[data-sent]");
  const sentList = $("[data-sent-list]");
  const watchDialog = $<HTMLDialogElement>("[data-watch-dialog]");
  const watchTitle = $("[data-watch-title]");
  const watchStatus = $("[data-watch-status]");
  const watchTerminal = $("[data-watch-terminal]");

  if (!id) {
    pageError.textContent = "No workshop was named in the address. Open one from the workshop list.";
    return;
  }
  grades.href = instructorApi.gradesUrl(id);

  let last: DashboardSnapshot | undefined;
  let columnsKey = "";
  const rows = new Map<string, HTMLTableRowElement>();
  let viewer: ViewerHandle | undefined;
  let returnFocus: HTMLElement | null = null;

  const setText = (element: HTMLElement, text: string) => {
    if (element.textContent !== text) element.textContent = text;
  };
  const fail = (error: unknown) => {
    pageError.textContent = error instanceof Error ? error.message : String(error);
    if (error instanceof ApiError && error.status === 401) signInHint();
  };
  const signInHint = () => {
    pageError.replaceChildren("Your instructor sign-in has expired. ");
    const a = document.createElement("a");
    a.href = "/instructor/";
    a.textContent = "Sign in again";
    pageError.append(a, ".");
  };

  const renderHeader = (s: DashboardSnapshot) => {
    const w = s.workshop;
    document.title = `${w.title} · Workshop · shipshape`;
    setText(title, w.title);
    const parts = [`${w.counts.admitted} of ${w.capacity} seats taken`];
    if (w.counts.queued) parts.push(`${w.counts.queued} waiting`);
    if (w.endedAt !== null) parts.push(`ended at ${formatClock(w.endedAt)} (${w.endedReason ?? "ended"}); grades are frozen`);
    else if (w.endsAt !== null) parts.push(`ends at ${formatClock(w.endsAt)} (${minutesFromNow(w.endsAt)})`);
    else parts.push(`${w.durationMinutes} minutes from the first learner in`);
    setText(summary, parts.join(" · "));
    setText(code, w.code);
    const url = new URL(w.joinPath, location.origin).href;
    joinLink.href = w.joinPath;
    setText(joinLink, url);
    if (document.activeElement !== capacityInput) capacityInput.value = String(w.capacity);
    if (document.activeElement !== prewarmInput) prewarmInput.value = String(w.warm.target);
    setText(
      warmStatus,
      w.endedAt !== null ? "" : `${w.warm.ready} ready${w.warm.starting ? `, ${w.warm.starting} starting` : ""} for learners still to come.`,
    );
    const ended = w.endedAt !== null;
    for (const el of controls.querySelectorAll<HTMLInputElement | HTMLButtonElement>("input, button")) el.disabled = ended;
    $("[data-join-card]").hidden = ended;
    setText(legend, `Idle: no typing for ${s.rules.idleAfterMinutes} minutes. Stuck: ${s.rules.stuckAfterFailedChecks} failed checks in a row without progress.`);
    sent.hidden = s.messages.length === 0;
    const items = s.messages.map((m) => {
      const li = document.createElement("li");
      li.textContent = `${formatClock(m.at)} — ${m.message}`;
      return li;
    });
    if (sentList.children.length !== items.length) sentList.replaceChildren(...items);
  };

  const renderGrid = (s: DashboardSnapshot) => {
    const key = s.exercises.map((e) => e.id).join(",");
    if (key !== columnsKey) {
      columnsKey = key;
      const cols: HTMLElement[] = [];
      const th = (text: string) => {
        const cell = document.createElement("th");
        cell.scope = "col";
        cell.textContent = text;
        return cell;
      };
      cols.push(th("Learner"), th("Status"));
      for (const e of s.exercises) {
        const cell = th(e.title);
        const lesson = document.createElement("span");
        lesson.className = "lesson";
        lesson.textContent = s.workshop.lessons.find((l) => l.slug === e.lesson)?.title ?? e.lesson;
        cell.append(lesson);
        cell.dataset.exercise = e.id;
        cols.push(cell);
      }
      cols.push(th("Terminal"));
      head.replaceChildren(...cols);
      for (const row of rows.values()) row.remove();
      rows.clear();
    }
    noLearners.hidden = s.learners.length > 0;
    gridWrap.hidden = s.learners.length === 0;
    const seen = new Set<string>();
    let previous: HTMLTableRowElement | null = null;
    for (const learner of s.learners) {
      seen.add(learner.memberId);
      let row = rows.get(learner.memberId);
      if (!row) {
        row = newRow(learner, s);
        rows.set(learner.memberId, row);
      }
      updateRow(row, learner, s);
      // Keep the server's order (by name) without re-inserting rows that are already in place.
      const expected: ChildNode | null = previous ? previous.nextSibling : body.firstChild;
      if (expected !== row) body.insertBefore(row, expected);
      previous = row;
    }
    for (const [memberId, row] of rows) {
      if (!seen.has(memberId)) {
        row.remove();
        rows.delete(memberId);
      }
    }
    grid.dataset.updatedAt = String(s.at);
  };

  const newRow = (learner: LearnerRow, s: DashboardSnapshot) => {
    const row = document.createElement("tr");
    row.dataset.learner = learner.name;
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = learner.name;
    const status = document.createElement("td");
    status.dataset.role = "status";
    row.append(name, status);
    for (const e of s.exercises) {
      const cell = document.createElement("td");
      cell.dataset.exercise = e.id;
      row.append(cell);
    }
    const terminals = document.createElement("td");
    terminals.dataset.role = "terminals";
    row.append(terminals);
    return row;
  };

  const updateRow = (row: HTMLTableRowElement, learner: LearnerRow, s: DashboardSnapshot) => {
    row.dataset.status = learner.status;
    const status = row.querySelector<HTMLElement>('[data-role="status"]')!;
    const statusKey = `${statusText(learner)}|${learner.idle}|${learner.stuck}`;
    if (status.dataset.key !== statusKey) {
      status.dataset.key = statusKey;
      status.replaceChildren(statusText(learner));
      if (learner.idle) status.append(flag("idle", "Idle"));
      if (learner.stuck) status.append(flag("stuck", "Stuck"));
    }
    for (const e of s.exercises) {
      const cell = row.querySelector<HTMLElement>(`td[data-exercise="${CSS.escape(e.id)}"]`)!;
      const c = learner.cells[e.id];
      if (!c) continue;
      cell.dataset.state = c.state;
      if (c.stuck) cell.dataset.stuck = "";
      else delete cell.dataset.stuck;
      setText(cell, cellText(c));
      cell.title = c.checks ? `${c.checks} check${c.checks === 1 ? "" : "s"}, ${c.failedChecks} failed` : "";
    }
    const terminals = row.querySelector<HTMLElement>('[data-role="terminals"]')!;
    const termKey = learner.terminals.join(",") + (s.workshop.endedAt === null ? "" : "|ended");
    if (terminals.dataset.key !== termKey) {
      terminals.dataset.key = termKey;
      const wrap = document.createElement("div");
      wrap.className = "watch-buttons";
      if (s.workshop.endedAt === null) {
        for (const name of learner.terminals) {
          const button = document.createElement("button");
          button.type = "button";
          button.className = "button button-small";
          button.dataset.watch = name;
          button.textContent = `Watch ${name}`;
          button.setAttribute("aria-label", `Watch ${learner.name}'s terminal ${name}, read-only`);
          button.addEventListener("click", () => void watch(learner.memberId, learner.name, name, button));
          wrap.append(button);
        }
      }
      terminals.replaceChildren(wrap.childElementCount ? wrap : document.createTextNode("—"));
    }
  };

  const flag = (kind: string, text: string) => {
    const span = document.createElement("span");
    span.className = `flag ${kind}`;
    span.textContent = text;
    return span;
  };

  /** What a screen-reader user would want to hear without looking: passes and learners getting stuck. */
  const announceChanges = (before: DashboardSnapshot | undefined, now: DashboardSnapshot) => {
    if (!before) return;
    const news: string[] = [];
    for (const learner of now.learners) {
      const old = before.learners.find((l) => l.memberId === learner.memberId);
      if (!old) {
        news.push(`${learner.name} joined.`);
        continue;
      }
      for (const e of now.exercises) {
        if (learner.cells[e.id]?.state === "passed" && old.cells[e.id]?.state !== "passed") news.push(`${learner.name} passed ${e.title}.`);
      }
      if (learner.stuck && !old.stuck) news.push(`${learner.name} seems stuck.`);
    }
    if (news.length) announce.textContent = news.join(" ");
  };

  const render = (s: DashboardSnapshot) => {
    announceChanges(last, s);
    last = s;
    renderHeader(s);
    renderGrid(s);
  };

  // ---- the live stream ----
  let source: EventSource | undefined;
  const connect = () => {
    source?.close();
    source = new EventSource(instructorApi.eventsUrl(id));
    source.addEventListener("dashboard", (event) => {
      connection.dataset.state = "live";
      setText(connection, "Live");
      pageError.textContent = "";
      render(JSON.parse((event as MessageEvent<string>).data) as DashboardSnapshot);
    });
    source.onerror = () => {
      connection.dataset.state = "lost";
      if (source?.readyState === EventSource.CONNECTING) return setText(connection, "Reconnecting…");
      // Closed for good (an HTTP error): find out why, then try again a little later.
      setText(connection, "Disconnected");
      instructorApi.dashboard(id).then(
        (s) => {
          render(s);
          window.setTimeout(connect, 3_000);
        },
        (error: unknown) => {
          fail(error);
          if (!(error instanceof ApiError) || error.status >= 500 || error.status === 0) window.setTimeout(connect, 5_000);
        },
      );
    };
  };
  connect();

  // ---- controls ----
  copyLink.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(joinLink.href);
      copied.textContent = "Copied";
    } catch {
      copied.textContent = "Copy failed; select the link instead";
    }
    window.setTimeout(() => (copied.textContent = ""), 3_000);
  });

  capacityForm.addEventListener("submit", (event) => {
    event.preventDefault();
    instructorApi.setCapacity(id, Number(capacityInput.value)).catch(fail);
  });
  prewarmForm.addEventListener("submit", (event) => {
    event.preventDefault();
    instructorApi.prewarm(id, Number(prewarmInput.value)).then(
      (w) => setText(warmStatus, `Starting: ${w.warm.ready} ready, ${w.warm.starting} starting.`),
      fail,
    );
  });
  messageForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = messageInput.value.trim();
    if (!text) return messageInput.focus();
    instructorApi.broadcast(id, text).then(
      ({ delivered }) => {
        messageInput.value = "";
        setText(messageStatus, `Sent to ${delivered} learner${delivered === 1 ? "" : "s"} with a terminal open; the rest see it on their join page.`);
      },
      fail,
    );
  });
  endButton.addEventListener("click", () => endDialog.showModal());
  $("[data-end-cancel]").addEventListener("click", () => endDialog.close());
  $("[data-end-confirm]").addEventListener("click", async () => {
    const confirm = $<HTMLButtonElement>("[data-end-confirm]");
    confirm.disabled = true;
    confirm.textContent = "Ending…";
    try {
      render(await instructorApi.end(id).then(() => instructorApi.dashboard(id)));
      endDialog.close();
      title.setAttribute("tabindex", "-1");
      title.focus();
    } catch (error) {
      endDialog.close();
      fail(error);
    } finally {
      confirm.disabled = false;
      confirm.textContent = "End workshop";
    }
  });

  // ---- read-only terminal ----
  const watch = async (memberId: string, name: string, terminal: string, from: HTMLElement) => {
    viewer?.close();
    returnFocus = from;
    setText(watchTitle, `${name}: terminal ${terminal} (read-only)`);
    setText(watchStatus, "Connecting…");
    watchDialog.showModal();
    try {
      viewer = await openViewer({
        container: watchTerminal,
        url: instructorApi.watchUrl(location, id, memberId, terminal),
        onStatus: (text) => setText(watchStatus, text),
      });
    } catch (error) {
      setText(watchStatus, `The terminal could not load: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  watchDialog.addEventListener("close", () => {
    viewer?.close();
    viewer = undefined;
    returnFocus?.focus();
  });
  $("[data-watch-close]").addEventListener("click", () => watchDialog.close());
}
