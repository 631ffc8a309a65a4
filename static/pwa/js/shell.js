// The chrome around the views: the header (network word, 同步 button), the status line (unsent items, the
// oldest, storage, last sync), the banner (login again / a new version), and the bottom tabs of my app.
import * as store from "./db.js";
import { lang, Offline, session } from "./api.js";
import { t } from "./i18n.js";
import { outboxSummary, STATES } from "./core/outbox.js";
import { ago } from "./core/time.js";
import { status as syncStatus, syncNow } from "./sync.js";
import { isReviewer, redraw, ROUTES, tabsFor } from "./router.js";
import { $, bytes, dispatch, esc, toast } from "./ui.js";
import { tabBadge } from "./watch.js";

let updateReg = null; // a service worker registration with a new version waiting

export async function statusBar() {
  const items = await store.allItems();
  const sum = outboxSummary(items);
  const parts = [];
  if (sum.pending) {
    parts.push(`<span class="alert">${esc(t("pending", { n: sum.pending }))}</span>`);
    parts.push(`<span>${esc(t("oldest", { t: ago(Date.now() - Date.parse(sum.oldest), lang()) }))}</span>`);
  } else parts.push(`<span>${esc(t("none_pending"))}</span>`);
  try {
    const est = await navigator.storage?.estimate?.();
    if (est) parts.push(`<span>${esc(t("storage", { used: bytes(est.usage), quota: bytes(est.quota) }))}</span>`);
  } catch { /* not available */ }
  const last = syncStatus.last_ok || (await store.getMeta("pulled_at"));
  if (last) parts.push(`<span>${esc(t("last_sync", { t: ago(Date.now() - last, lang()) }))}</span>`);
  $("#statusbar").innerHTML = parts.join("");
  const fix = items.filter((i) => i.state === STATES.NEEDS_FIXING || i.state === STATES.CONFLICT).length;
  const tab = $('[data-tab="outbox"]');
  if (tab) tab.innerHTML = esc(t("tab_outbox")) + (sum.pending ? `<span class="badge" data-testid="outbox-badge">${sum.pending}</span>` : "") +
    (fix ? `<span class="badge" style="right:auto;left:8px">!</span>` : "");
  const net = $("#net");
  net.textContent = navigator.onLine ? t("online") : t("offline");
  net.classList.toggle("off", !navigator.onLine);
  const btn = $("#sync-btn");
  btn.textContent = syncStatus.phase === "syncing" ? t("syncing") : t("sync");
  btn.setAttribute("aria-busy", String(syncStatus.phase === "syncing"));
  await banner(sum);
}

async function banner(sum) {
  const s = await session();
  const el = $("#banner");
  if (s?.login_required && !location.hash.startsWith("#login")) {
    el.innerHTML = `<div class="banner"><span>${esc(t("relogin", { n: sum.pending }))}</span><a class="btn" href="#login">${esc(t("login"))}</a></div>`;
  } else if (updateReg) {
    el.innerHTML = `<div class="banner"><span>${esc(t("update_ready"))}</span><button type="button" data-action="update">${esc(t("update"))}</button></div>`;
  } else el.innerHTML = "";
}

/** The header, tabs and status line for `me` on the route `name` (drawn after each view). */
export function chrome(me, name) {
  $("#brand").textContent = t("app");
  document.body.classList.toggle("console", isReviewer(me));
  const nav = $("#tabs");
  const tabs = tabsFor(me);
  if (nav.dataset.set !== tabs.join()) {
    nav.innerHTML = tabs.map((k) => `<a href="#${k}" data-tab="${k}"></a>`).join("");
    nav.dataset.set = tabs.join();
  }
  const here = ROUTES[name]?.tab;
  for (const a of nav.querySelectorAll("a")) {
    a.textContent = t("tab_" + a.dataset.tab);
    a.insertAdjacentHTML("beforeend", tabBadge(a.dataset.tab)); // new tasks / new reports (watch.js)
    if (a.dataset.tab === here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  nav.hidden = !me;
  statusBar();
}

/** A new version is installed and waiting: the banner offers 更新. */
export function offerUpdate(reg) { updateReg = reg; statusBar(); }

const actions = {
  async sync() {
    const r = await syncNow("manual");
    if (r?.error instanceof Offline || !navigator.onLine) toast(t("offline"));
    redraw();
  },
  update() {
    if (!updateReg?.waiting) return;
    sessionStorage.setItem("gridcase.updating", "1");
    updateReg.waiting.postMessage({ type: "SKIP_WAITING" });
  },
};

/** The header's and the banner's buttons. */
export function bindChrome() {
  for (const el of [$("header.top"), $("#banner")]) el.addEventListener("click", (e) => dispatch(e, actions));
}
