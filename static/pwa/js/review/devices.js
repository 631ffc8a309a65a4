// 设备 (#devices): who holds unsent work, how much, since when, and when each device was last heard of.
import { apiJson } from "../api.js";
import { t } from "../i18n.js";
import { $, esc, view } from "../ui.js";
import { agoText, failed, regionName, when } from "./common.js";

export async function render() {
  const unsent = sessionStorage.getItem("gridcase.dev.unsent") !== "0";
  view().innerHTML = `<h2>${esc(t("devices_title"))}</h2>
    <label class="check"><input type="checkbox" id="dev-unsent"${unsent ? " checked" : ""}>${esc(t("only_unsent"))}</label><div id="dev-list"><p class="loading">…</p></div>`;
  $("#dev-unsent").addEventListener("change", (e) => { sessionStorage.setItem("gridcase.dev.unsent", e.target.checked ? "1" : "0"); render(); });
  try {
    const list = await apiJson(`/api/v1/devices?unsent=${unsent}`);
    $("#dev-list").innerHTML = list.map((d) => `<div class="card device" data-device="${esc(d.id)}">
      <div class="row"><strong class="grow">${esc(d.display_name)} (${esc(d.username)})</strong><span class="chip st">${esc(t("role_" + d.role))}</span>
        ${d.outbox_pending ? `<span class="chip waiting">${esc(t("unsent_n", { n: d.outbox_pending }))}</span>` : `<span class="chip sent">${esc(t("none_pending"))}</span>`}${d.revoked_at ? `<span class="chip conflict">${esc(t("revoked"))}</span>` : ""}</div>
      <div class="meta">${esc(t("device"))} <code>${esc(d.id)}</code> · ${esc(regionName(d.region))}</div>
      <div>${d.outbox_oldest ? `${esc(t("since", { t: agoText(d.outbox_oldest) }))} (${esc(when(d.outbox_oldest))}) · ` : ""}${esc(t("last_contact", { t: agoText(d.last_seen) }))} (${esc(when(d.last_seen))})</div></div>`).join("")
      || `<p class="hint">${esc(t("empty"))}</p>`;
  } catch (e) { $("#dev-list").innerHTML = ""; failed(e); }
}
