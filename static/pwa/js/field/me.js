// 我的: who I am on which device, 我的积分 (a volunteer's points and ledger: GET /api/v1/points/ledger, kept for
// offline), language, the tile server, refreshing the reference data, logging out (with a warning when items
// are unsent); for reviewers also the way into the field views.
import * as store from "../db.js";
import { apiJson, lang, logout, Offline, session } from "../api.js";
import { t } from "../i18n.js";
import { outboxSummary } from "../core/outbox.js";
import { pull, refreshReference } from "../sync.js";
import { current, go, isReviewer } from "../router.js";
import { $, esc, switchLang, toast, view } from "../ui.js";

export async function render() {
  const s = await session();
  const u = s?.user || {};
  const persisted = await navigator.storage?.persisted?.();
  view().innerHTML = `<h2>${esc(t("me_title"))}</h2>
    <div class="card"><dl class="kv"><dt>${esc(t("username"))}</dt><dd>${esc(u.display_name || "")} (${esc(u.username || "")})</dd>
      <dt>&nbsp;</dt><dd>${esc(t("role_" + u.role))} · ${esc(u.region_name || u.region || "")}</dd>
      <dt>${esc(t("device"))}</dt><dd><code>${esc(await store.deviceId())}</code></dd></dl>
      <p class="meta">${esc(persisted ? t("persist_ok") : t("persist_no"))}</p></div>
    ${u.role === "volunteer" ? await pointsCard() : ""}
    <h3>${esc(t("language"))}</h3>
    <div class="row"><button type="button" data-action="lang" data-lang="zh" aria-pressed="${lang() !== "en"}">中文</button>
      <button type="button" data-action="lang" data-lang="en" aria-pressed="${lang() === "en"}">English</button></div>
    <h3><label for="tiles">${esc(t("tile_url"))}</label></h3>
    <input type="url" id="tiles" value="${esc(localStorage.getItem("gridcase.tiles") || "")}" placeholder="https://…/{z}/{x}/{y}.png">
    <p class="hint">${esc(t("tile_hint"))}</p>
    <button type="button" data-action="save-tiles">${esc(t("save"))}</button>
    ${isReviewer(u) ? `<h3>${esc(t("shortcuts"))}</h3><div class="row"><a class="btn" href="#capture">${esc(t("capture_title"))}</a>
      <a class="btn" href="#outbox">${esc(t("outbox_title"))}</a><a class="btn" href="#tasks">${esc(t("tasks_title"))}</a></div>` : ""}
    <h3>&nbsp;</h3>
    <div class="row"><button type="button" data-action="refresh-data">${esc(t("refresh_data"))}</button>
      <button type="button" class="danger" data-action="logout">${esc(t("logout"))}</button></div>`;
}

/** 我的积分: the total and the ledger, fresh when online, the last kept copy when not. */
async function pointsCard() {
  let ledger = null;
  if (navigator.onLine) {
    try { ledger = await apiJson("/api/v1/points/ledger?limit=50"); await store.setCached("points", ledger); } catch { /* offline after all */ }
  }
  ledger = ledger || (await store.getCached("points"));
  if (!ledger) return `<h3>${esc(t("my_points"))}</h3><p class="hint">${esc(t("points_offline"))}</p>`;
  const when = (iso) => new Date(iso).toLocaleDateString(lang() === "en" ? "en" : "zh-CN");
  return `<h3>${esc(t("my_points"))}</h3><div class="card" data-testid="points">
    <p><strong data-testid="points-total">${esc(t("points_total", { n: ledger.total }))}</strong></p>
    <ul class="plain">${ledger.entries.map((e) => `<li data-testid="points-entry"><a href="#case/${esc(e.case_id)}">${esc(e.case_number || "")}</a>
      ${esc(t("pr_" + e.reason))} <strong>${e.points > 0 ? "+" : ""}${esc(e.points)}</strong> <span class="meta">${esc(when(e.at))}</span></li>`).join("")}</ul></div>`;
}

export const actions = {
  lang: switchLang,
  "save-tiles": () => { localStorage.setItem("gridcase.tiles", $("#tiles").value.trim()); toast(t("save")); },
  async "refresh-data"() {
    try { await refreshReference(true); await pull(); toast("OK"); } catch (x) { toast(x instanceof Offline ? t("offline") : x.message); }
  },
  async logout() {
    const pending = outboxSummary(await store.allItems()).pending;
    if (pending && !confirm(t("logout_unsent", { n: pending }))) return;
    await logout();
    current.me = null;
    go("#login");
  },
};
