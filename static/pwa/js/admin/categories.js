// 类别 (#admin-categories): rename, reorder, choose who may report each, deactivate; a used one is never deleted.
import { api, apiJson, lang } from "../api.js";
import { t } from "../i18n.js";
import { redraw } from "../router.js";
import { $, esc, toast, view } from "../ui.js";
import { problemText } from "../review/common.js";
import { header, send } from "./nav.js";

const ROLES = ["volunteer", "grid_worker", "reviewer", "admin"];
let list = [];

const label = (c) => (lang() === "en" ? c.name_en : c.name_zh);

function row(c, i) {
  const roles = ROLES.map((r) => `<label class="check"><input type="checkbox" data-role="${r}"${c.roles.includes(r) ? " checked" : ""}>${esc(t("role_" + r))}</label>`).join("");
  return `<div class="card" data-code="${esc(c.code)}"${c.active ? "" : ' data-inactive="1"'}>
    <div class="row"><strong class="grow">${esc(label(c))}</strong>${c.active ? "" : `<span class="chip">${esc(t("inactive"))}</span>`}
      <button type="button" data-action="up" aria-label="${esc(t("move_up"))}"${i ? "" : " disabled"}>↑</button>
      <button type="button" data-action="down" aria-label="${esc(t("move_down"))}"${i < list.length - 1 ? "" : " disabled"}>↓</button></div>
    <label>${esc(t("name_zh"))} <input name="name_zh" value="${esc(c.name_zh)}" maxlength="64"></label>
    <label>${esc(t("name_en"))} <input name="name_en" value="${esc(c.name_en)}" maxlength="64"></label>
    <div class="row">${esc(t("who_reports"))}: ${roles}</div>
    <div class="row"><button type="button" data-action="save">${esc(t("save"))}</button>
      <button type="button" data-action="toggle">${esc(t(c.active ? "deactivate" : "activate"))}</button>
      <button type="button" data-action="remove">${esc(t("delete"))}</button></div></div>`;
}

export async function render() {
  view().innerHTML = `${await header("admin-categories")}<h2>${esc(t("tab_admin-categories"))}</h2><div id="cat-list"><p class="loading">…</p></div>
    <form id="cat-new" class="card"><h3>${esc(t("add_category"))}</h3>
      <label>${esc(t("code"))} <input name="code" pattern="[a-z][a-z0-9_]{0,31}" required></label>
      <label>${esc(t("name_zh"))} <input name="name_zh" required maxlength="64"></label>
      <label>${esc(t("name_en"))} <input name="name_en" required maxlength="64"></label>
      <button type="submit">${esc(t("add"))}</button></form>`;
  $("#cat-new").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    try {
      await send("/api/v1/admin/categories", "POST", { code: f.get("code"), name_zh: f.get("name_zh"), name_en: f.get("name_en"), roles: ROLES });
      redraw();
    } catch (err) { toast(problemText(err)); }
  });
  try {
    list = await apiJson("/api/v1/admin/categories");
    $("#cat-list").innerHTML = list.map(row).join("");
  } catch (e) { $("#cat-list").innerHTML = `<p class="err" role="alert">${esc(problemText(e))}</p>`; }
}

const codeOf = (el) => el.closest("[data-code]").dataset.code;

async function move(el, by) {
  const codes = list.map((c) => c.code);
  const i = codes.indexOf(codeOf(el));
  [codes[i], codes[i + by]] = [codes[i + by], codes[i]];
  try { await send("/api/v1/admin/categories/order", "PUT", { codes }); redraw(); } catch (e) { toast(problemText(e)); }
}

export const actions = {
  up: (el) => move(el, -1),
  down: (el) => move(el, 1),
  async save(el) {
    const card = el.closest("[data-code]");
    const body = { name_zh: $("[name=name_zh]", card).value.trim(), name_en: $("[name=name_en]", card).value.trim(),
      roles: [...card.querySelectorAll("[data-role]:checked")].map((x) => x.dataset.role) };
    try { await send(`/api/v1/admin/categories/${encodeURIComponent(codeOf(el))}`, "PATCH", body); toast(t("saved")); redraw(); } catch (e) { toast(problemText(e)); }
  },
  async toggle(el) {
    const active = !el.closest("[data-code]").dataset.inactive;
    try { await send(`/api/v1/admin/categories/${encodeURIComponent(codeOf(el))}`, "PATCH", { active: !active }); redraw(); } catch (e) { toast(problemText(e)); }
  },
  async remove(el) {
    if (!confirm(t("delete_confirm"))) return;
    try { await api(`/api/v1/admin/categories/${encodeURIComponent(codeOf(el))}`, { method: "DELETE" }); redraw(); } catch (e) { toast(problemText(e)); }
  },
};
