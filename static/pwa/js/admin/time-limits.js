// 时限 (#admin-time-limits): the limit of each stage by colour, category and handling level, and its clock.
import { apiJson } from "../api.js";
import { t } from "../i18n.js";
import { redraw } from "../router.js";
import { $, esc, opt, toast, view } from "../ui.js";
import { categoryMap, problemText } from "../review/common.js";
import { header, send } from "./nav.js";

export async function render() {
  view().innerHTML = `${await header("admin-time-limits")}<h2>${esc(t("tab_admin-time-limits"))}</h2>
    <p class="hint" data-testid="new-stages-only">${esc(t("limits_new_only"))}</p><div id="sla-list"><p class="loading">…</p></div>`;
  try {
    const [rules, cats] = await Promise.all([apiJson("/api/v1/admin/sla-rules"), categoryMap()]);
    const catName = (code) => (code ? cats.get(code) || code : t("f_all"));
    $("#sla-list").innerHTML = rules.map((r) => `<div class="card" data-rule="${r.id}">
      <div class="row"><strong class="grow">${esc(t("stage_" + r.stage))} · ${esc(t(r.risk_level))} · ${esc(catName(r.category))}${r.level ? ` · ${esc(t("level_" + r.level))}` : ""}</strong></div>
      <div class="row"><label>${esc(t("limit_minutes"))} <input name="limit_minutes" type="number" min="1" value="${r.limit_minutes}"></label>
        <label>${esc(t("clock"))} <select name="clock">${opt("natural", t("clock_natural"), r.clock)}${opt("working", t("clock_working"), r.clock)}</select></label>
        <button type="button" data-action="save">${esc(t("save"))}</button></div></div>`).join("");
  } catch (e) { $("#sla-list").innerHTML = `<p class="err" role="alert">${esc(problemText(e))}</p>`; }
}

export const actions = {
  async save(el) {
    const card = el.closest("[data-rule]");
    const body = { limit_minutes: Number($("[name=limit_minutes]", card).value), clock: $("[name=clock]", card).value };
    try { await send(`/api/v1/admin/sla-rules/${card.dataset.rule}`, "PATCH", body); toast(t("saved")); redraw(); } catch (e) { toast(problemText(e)); }
  },
};
