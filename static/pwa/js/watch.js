// Work arrives by itself: while the app is open and online it asks GET /api/v1/cases/watch every half minute
// (and when it comes back to the screen or online) with the last ETag; a 304 costs the server a few index
// look-ups and the phone a few hundred bytes. When something in my scope changed it syncs (the pull brings
// the cases), then says what came: a notice, and a badge on the tab (任务: my new tasks; 审核: new reports).
// Web Push would need Google's push service, which phones in mainland China do not reach (README).
import * as store from "./db.js";
import { api, session } from "./api.js";
import { t } from "./i18n.js";
import { syncNow } from "./sync.js";
import { current, isReviewer, redraw } from "./router.js";
import { esc } from "./ui.js";
import { OPEN } from "./field/data.js";

export const DEFAULT_POLL_MS = 30_000; // new work shows within a minute, as the server's poll_s says
const badges = { tasks: 0, queue: 0 };
let etag = null;
let timer = null;

/** The poll interval: the default, or a shorter one set for a test (localStorage "gridcase.poll_ms"). */
export function pollMs() {
  const set = Number(typeof localStorage !== "undefined" && localStorage.getItem("gridcase.poll_ms"));
  return Number.isFinite(set) && set >= 200 ? set : DEFAULT_POLL_MS;
}

/** The badge of a bottom tab, as HTML ("" when nothing is new there). */
export function tabBadge(tab) {
  const n = badges[tab] || 0;
  return n ? `<span class="badge" data-testid="${esc(tab)}-badge" aria-label="${esc(t("new_count", { n }))}">${n}</span>` : "";
}

function paintBadges() {
  for (const tab of Object.keys(badges)) {
    const a = document.querySelector(`[data-tab="${tab}"]`);
    if (!a) continue;
    a.querySelector("[data-testid$=-badge]")?.remove();
    a.insertAdjacentHTML("beforeend", tabBadge(tab));
  }
}

/** A notice under the banner that stays until it is read (a toast could pass while the phone lies on the table). */
function notice(text, href) {
  let el = document.getElementById("notice");
  if (!el) {
    el = document.createElement("div");
    el.id = "notice";
    el.setAttribute("role", "status");
    document.getElementById("banner").after(el);
    el.addEventListener("click", (e) => { if (e.target.closest("[data-notice-close], a")) el.innerHTML = ""; });
  }
  el.innerHTML = `<div class="banner" data-testid="notice"><span>${esc(text)}</span>
    <a class="btn" href="${esc(href)}">${esc(t("view"))}</a><button type="button" data-notice-close>${esc(t("dismiss"))}</button></div>`;
}

/** My open tasks that I have not opened yet (the 任务 badge; a task stays new until its page is opened). */
export async function unseenTasks() {
  const me = current.me?.username;
  const seen = new Set((await store.getMeta("seen_tasks")) || []);
  return (await store.allCases()).filter((c) => c.assignee === me && OPEN.has(c.state) && !seen.has(c.id));
}

/** A task's page was opened: it is not new any more. */
export async function markTaskSeen(id) {
  const seen = new Set((await store.getMeta("seen_tasks")) || []);
  if (!seen.has(id)) { seen.add(id); await store.setMeta("seen_tasks", [...seen].slice(-2000)); }
  badges.tasks = (await unseenTasks()).length;
  paintBadges();
}

/** The queue was drawn: what was new there has been seen. */
export function markQueueSeen() {
  badges.queue = 0;
  paintBadges();
}

async function tellField(before, after) {
  const fresh = await unseenTasks();
  badges.tasks = fresh.length;
  if (after.assigned_open > (before?.assigned_open ?? after.assigned_open) && fresh.length) {
    notice(t("new_tasks", { n: fresh.length }), `#case/${fresh[0].id}`);
  } else if (after.returned_mine > (before?.returned_mine ?? after.returned_mine)) {
    const back = (await store.allCases()).find((c) => c.state === "returned" && c.reporter === current.me?.username);
    notice(t("returned_notice", { r: back?.return_reason || "" }), back ? `#case/${back.id}` : "#tasks");
  }
}

function tellConsole(before, after) {
  const more = after.awaiting_review - (before?.awaiting_review ?? after.awaiting_review);
  if (more > 0) {
    badges.queue += more;
    notice(t("new_reports", { n: more }), "#queue");
    if (current.name === "queue" && !document.querySelector("#view input:focus, #view textarea:focus")) redraw();
  }
}

/** Ask once; on a change, sync and tell. Never throws (a failed poll waits for the next). */
export async function check() {
  if (document.visibilityState === "hidden" || navigator.onLine === false) return;
  const s = await session();
  if (!s?.user || s.login_required) return;
  let res;
  try {
    res = await api("/api/v1/cases/watch", { headers: etag ? { "If-None-Match": etag } : {} });
  } catch { return; }
  if (res.status === 304) return;
  const after = await res.json();
  const key = `watch:${s.user.username}`;
  const before = await store.getMeta(key);
  if (!before || before.etag !== after.etag) {
    const run = await syncNow("watch");
    if (run?.skipped || run?.error) return; // another sync runs (or this one failed): the next poll asks again
  }
  etag = res.headers.get("ETag");
  await store.setMeta(key, after);
  if (before && before.etag === after.etag) return paintBadges();
  if (isReviewer(s.user)) tellConsole(before, after);
  else await tellField(before, after);
  paintBadges();
}

/** Start polling (main.js, once): on a timer, when the app comes back to the screen, and when it is online. */
export function startWatch() {
  clearInterval(timer);
  timer = setInterval(check, pollMs());
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") check(); });
  window.addEventListener("online", () => check());
  setTimeout(check, 1000);
}
