/**
 * The learner's join page (/join/): a code and a name, then the workshop's lessons, their place in
 * the queue when the class is full, and the instructor's messages. It asks the server every two
 * seconds, so the queue moves on the page without a reload.
 */
import type { LearnerView } from "../../../contracts/workshop-api.ts";
import { ApiError, describeWait, formatClock, learnerApi } from "./workshop-api.ts";

const POLL_MS = 2_000;

export function mountJoinPage(): void {
  const formSection = document.querySelector<HTMLElement>("[data-join-form-section]")!;
  const form = document.querySelector<HTMLFormElement>("[data-join-form]")!;
  const codeInput = form.querySelector<HTMLInputElement>("#join-code")!;
  const nameInput = form.querySelector<HTMLInputElement>("#join-name")!;
  const formError = form.querySelector<HTMLElement>("[data-join-error]")!;
  const submit = form.querySelector<HTMLButtonElement>('button[type="submit"]')!;
  const joined = document.querySelector<HTMLElement>("[data-joined]")!;
  const title = joined.querySelector<HTMLElement>("[data-joined-title]")!;
  const workshopTitle = joined.querySelector<HTMLElement>("[data-workshop-title]")!;
  const statusBox = joined.querySelector<HTMLElement>(".status")!;
  const statusText = joined.querySelector<HTMLElement>("[data-status-text]")!;
  const statusDetail = joined.querySelector<HTMLElement>("[data-status-detail]")!;
  const startLink = joined.querySelector<HTMLAnchorElement>("[data-start-link]")!;
  const lessons = joined.querySelector<HTMLOListElement>("[data-lessons]")!;
  const messagesSection = joined.querySelector<HTMLElement>("[data-messages-section]")!;
  const messages = joined.querySelector<HTMLOListElement>("[data-messages]")!;
  const leave = joined.querySelector<HTMLButtonElement>("[data-leave]")!;
  const leaveError = joined.querySelector<HTMLElement>("[data-leave-error]")!;

  const params = new URLSearchParams(location.search);
  const presetCode = params.get("code");
  if (presetCode) codeInput.value = presetCode.toUpperCase();

  let timer: number | undefined;
  let shownMessages = new Set<number>();
  let ended = false;

  const setText = (element: HTMLElement, text: string) => {
    // Only real changes: a live region re-announces whatever is written to it.
    if (element.textContent !== text) element.textContent = text;
  };

  const showForm = () => {
    window.clearTimeout(timer);
    joined.hidden = true;
    formSection.hidden = false;
    shownMessages = new Set();
    messages.replaceChildren();
  };

  const render = (view: LearnerView, first: boolean) => {
    formSection.hidden = true;
    joined.hidden = false;
    setText(workshopTitle, view.workshop.title);
    setText(title, `Welcome, ${view.you.name}`);
    if (first) title.focus();

    const { you, workshop } = view;
    const state = workshop.ended ? "ended" : you.status;
    statusBox.dataset.state = state;
    let text: string;
    let detail = "";
    switch (state) {
      case "ended":
        text = "This workshop has ended.";
        detail = "Your results are saved with your instructor. Thank you for taking part!";
        break;
      case "admitted":
        text = "You are in. Your sandbox is ready.";
        detail = workshop.endsAt ? `The workshop ends at ${formatClock(workshop.endsAt)}.` : "";
        break;
      case "queued":
        text = `The workshop is full. You are number ${you.position ?? "?"} in the queue.`;
        detail =
          you.waitReason === "server_full"
            ? "Seats are free, but the server has no sandbox to spare yet; you will be let in as soon as it has."
            : you.estimateSeconds !== null
              ? `Estimated wait: ${describeWait(you.estimateSeconds)}. Keep this page open: it updates by itself.`
              : "You will be let in as soon as someone leaves or your instructor adds seats. Keep this page open: it updates by itself.";
        break;
      case "away":
        text = "Your sandbox was removed after a while without activity.";
        detail = "Open a lesson to get back in: you take the next free seat.";
        break;
      default:
        text = "You left this workshop.";
    }
    setText(statusText, text);
    setText(statusDetail, detail);
    const first_ = workshop.lessons[0];
    startLink.hidden = state !== "admitted" || !first_;
    if (first_) startLink.href = first_.href;

    const items = workshop.lessons.map((lesson) => {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = lesson.href;
      a.textContent = lesson.title;
      li.append(a);
      return li;
    });
    if (lessons.children.length !== items.length) lessons.replaceChildren(...items);

    for (const m of view.messages) {
      if (shownMessages.has(m.id)) continue;
      shownMessages.add(m.id);
      const li = document.createElement("li");
      const time = document.createElement("time");
      time.dateTime = new Date(m.at).toISOString();
      time.textContent = formatClock(m.at);
      li.append(time, document.createTextNode(m.message));
      li.dataset.message = "";
      messages.append(li);
    }
    messagesSection.hidden = shownMessages.size === 0;
    ended = workshop.ended;
    setText(leave, ended ? "Join another workshop" : "Leave the workshop");

    window.clearTimeout(timer);
    if (!workshop.ended) timer = window.setTimeout(() => void poll(), POLL_MS);
  };

  const poll = async () => {
    try {
      render(await learnerApi.mine(), false);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return showForm();
      // A network blip: try again shortly; the page keeps what it showed.
      window.clearTimeout(timer);
      timer = window.setTimeout(() => void poll(), POLL_MS * 2);
    }
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.textContent = "";
    const code = codeInput.value.trim();
    const name = nameInput.value.trim();
    if (!code) {
      formError.textContent = "Enter the workshop code.";
      codeInput.focus();
      return;
    }
    if (!name) {
      formError.textContent = "Enter your name.";
      nameInput.focus();
      return;
    }
    submit.disabled = true;
    try {
      render(await learnerApi.join(code, name), true);
    } catch (error) {
      formError.textContent = error instanceof Error ? error.message : String(error);
      (/code|workshop/i.test(formError.textContent) ? codeInput : nameInput).focus();
    } finally {
      submit.disabled = false;
    }
  });

  leave.addEventListener("click", async () => {
    if (ended) {
      showForm();
      codeInput.value = "";
      codeInput.focus();
      return;
    }
    leave.disabled = true;
    leaveError.textContent = "";
    try {
      await learnerApi.leave();
      showForm();
      codeInput.focus();
    } catch (error) {
      leaveError.textContent = error instanceof Error ? error.message : String(error);
    } finally {
      leave.disabled = false;
    }
  });

  void learnerApi.mine().then(
    (view) => render(view, false),
    () => {
      showForm();
      if (presetCode) nameInput.focus();
    },
  );
}
