// 冲突 (#conflicts): open conflicts of my scope, server and field values side by side, settled with 保留服务器值
// or 采用现场值; a state conflict can only keep the server's value (a transition settles it).
import { apiJson } from "../api.js";
import { t } from "../i18n.js";
import { redraw } from "../router.js";
import { $, esc, toast, view } from "../ui.js";
import { categoryMap, failed, fieldName, fmtVal, problemText, short, when } from "./common.js";

/** One conflict, its two values and its two buttons (here and on the case page). */
export function conflictCard(x, cats) {
  const stateField = x.field === "state";
  return `<div class="card conflict-card" data-conflict="${esc(x.id)}">
    <div class="row"><strong class="grow">${x.case_number ? `<a class="btn" href="#review/${esc(x.case_id)}">${esc(x.case_number)}</a> · ` : ""}${esc(fieldName(x.field))}</strong>
      <span class="meta">${esc(t("c_base"))}: ${esc(fmtVal(x.field, x.base, cats))}</span></div>
    <div class="side">
      <div class="val-box"><div class="meta">${esc(t("c_server"))}</div><div class="big" data-testid="server-value">${esc(fmtVal(x.field, x.server, cats))}</div>
        <button type="button" data-action="resolve-conflict" data-choose="server" data-id="${esc(x.id)}">${esc(t("keep_server"))}</button></div>
      <div class="val-box"><div class="meta">${esc(t("c_client"))} · ${esc(t("by_whom", { u: x.username || "—", d: short(x.device_id) }))}</div><div class="big" data-testid="client-value">${esc(fmtVal(x.field, x.client, cats))}</div>
        <button type="button" data-action="resolve-conflict" data-choose="client" data-id="${esc(x.id)}"${stateField ? " disabled" : ""}>${esc(t("take_field"))}</button></div>
    </div>
    <div class="meta">${esc(when(x.created_at))}${x.base_version ? ` · v${x.base_version}` : ""}${stateField ? ` · ${esc(t("c_state_hint"))}` : ""}</div></div>`;
}

export async function render() {
  view().innerHTML = `<h2>${esc(t("conflicts_title"))}</h2><div id="c-list"><p class="loading">…</p></div>`;
  try {
    const [list, cats] = await Promise.all([apiJson("/api/v1/conflicts?status=open"), categoryMap()]);
    $("#c-list").innerHTML = list.map((x) => conflictCard(x, cats)).join("") || `<p class="hint">${esc(t("none_open"))}</p>`;
  } catch (e) { $("#c-list").innerHTML = ""; failed(e); }
}

/** The buttons of a conflict card: POST /api/v1/conflicts/<id>/resolve, then the page again. */
export async function resolveConflict(el) {
  el.disabled = true;
  try {
    const r = await apiJson(`/api/v1/conflicts/${encodeURIComponent(el.dataset.id)}/resolve`, { method: "POST", body: { choose: el.dataset.choose } });
    toast(`${fieldName(r.field)}: ${t("c_resolved", { c: fmtVal(r.field, r.resolved_value, await categoryMap()) })}`);
    redraw();
  } catch (e) { el.disabled = false; toast(problemText(e)); }
}

export const actions = { "resolve-conflict": resolveConflict };
