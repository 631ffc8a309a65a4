// 操作记录 (#admin-audit): every admin action, newest first: who (by name), when, and what, in words.
import { apiJson } from "../api.js";
import { t } from "../i18n.js";
import { $, esc, view } from "../ui.js";
import { failed, when } from "../review/common.js";

export async function render() {
  view().innerHTML = `<h2>${esc(t("admin_audit"))}</h2><div id="audit-list"><p class="loading">…</p></div>`;
  try {
    const events = await apiJson("/api/v1/admin/audit?limit=200");
    $("#audit-list").innerHTML = events.map((e) => `<div class="card audit-event" data-action-name="${esc(e.action)}">
      <div class="row"><strong class="grow">${esc(e.actor_display_name || e.actor_username)}</strong><span class="meta">${esc(when(e.at))}</span></div>
      <div>${esc(e.summary)}</div></div>`).join("") || `<p class="hint">${esc(t("audit_empty"))}</p>`;
  } catch (e) { $("#audit-list").innerHTML = ""; failed(e); }
}
