// 人员 (#admin-people): people in my scope by name, role label and place path, with last contact and unsent
// work; new person; roster import (check first, then import; the codes are offered once as a CSV download);
// disable, enable, move, reset (a new activation code; the phone's outbox stays on the phone).
import { api, apiJson, lang } from "../api.js";
import { t } from "../i18n.js";
import { $, esc, opt, toast, view } from "../ui.js";
import { agoText, failed, problemText } from "../review/common.js";

const ROLES = ["grid_worker", "volunteer", "reviewer", "admin"];
let roster = null; // the chosen file, kept between the check and the import

export async function render() {
  const q = sessionStorage.getItem("gridcase.people.q") || "";
  const role = sessionStorage.getItem("gridcase.people.role") || "";
  view().innerHTML = `<h2>${esc(t("admin_people"))}</h2>
    <form id="people-search" class="row"><input type="search" id="people-q" class="grow" placeholder="${esc(t("people_search"))}" value="${esc(q)}">
      <select id="people-role">${opt("", t("all_roles"), role)}${ROLES.map((r) => opt(r, t("role_" + r), role)).join("")}</select></form>
    <details class="card"><summary>${esc(t("roster"))}</summary><p class="hint">${esc(t("roster_hint"))}</p>
      <input type="file" id="roster-file" accept=".csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet">
      <p class="row"><button type="button" data-action="check">${esc(t("roster_check"))}</button><button type="button" class="primary" data-action="import" id="roster-import" disabled>${esc(t("do_import"))}</button></p>
      <div id="roster-result" aria-live="polite"></div></details>
    <details class="card"><summary>${esc(t("new_person"))}</summary><form id="person-new">
      <label class="lbl" for="np-username">${esc(t("username"))}</label><input id="np-username" required autocapitalize="none">
      <label class="lbl" for="np-name">${esc(t("display_name"))}</label><input id="np-name">
      <label class="lbl" for="np-phone">${esc(t("phone"))}</label><input id="np-phone" type="tel">
      <label class="lbl" for="np-role">${esc(t("role"))}</label><select id="np-role">${ROLES.map((r) => opt(r, t("role_" + r), "grid_worker")).join("")}</select>
      <label class="lbl" for="np-region">${esc(t("region"))}</label><input id="np-region" required placeholder="${esc(t("region_hint"))}">
      <button class="primary" type="submit" style="margin-top:10px">${esc(t("create"))}</button></form></details>
    <div id="people-list"><p class="loading">…</p></div>`;
  $("#people-search").addEventListener("submit", (e) => { e.preventDefault(); search(); });
  $("#people-role").addEventListener("change", search);
  $("#roster-file").addEventListener("change", (e) => { roster = e.target.files[0] || null; $("#roster-import").disabled = true; $("#roster-result").innerHTML = ""; });
  $("#person-new").addEventListener("submit", create);
  await list(q, role);
}

function search() {
  sessionStorage.setItem("gridcase.people.q", $("#people-q").value.trim());
  sessionStorage.setItem("gridcase.people.role", $("#people-role").value);
  list($("#people-q").value.trim(), $("#people-role").value);
}

async function list(q, role) {
  const params = new URLSearchParams({ limit: "200" });
  if (q) params.set("q", q);
  if (role) params.set("role", role);
  try {
    const people = await apiJson(`/api/v1/admin/people?${params}`);
    $("#people-list").innerHTML = people.map(card).join("") || `<p class="hint">${esc(t("empty"))}</p>`;
  } catch (e) { $("#people-list").innerHTML = ""; failed(e); }
}

const card = (p) => `<div class="card person" data-user="${esc(p.id)}" data-username="${esc(p.username)}">
  <div class="row"><strong class="grow">${esc(p.display_name)}</strong><span class="chip st">${esc(t("role_" + p.role))}</span>
    ${p.disabled ? `<span class="chip conflict">${esc(t("disabled"))}</span>` : ""}${p.activated ? "" : `<span class="chip waiting">${esc(t("not_activated"))}</span>`}
    ${p.outbox_pending ? `<span class="chip waiting">${esc(t("unsent_n", { n: p.outbox_pending }))}</span>` : ""}</div>
  <div class="meta">${esc(p.region_path)} · ${esc(p.username)}${p.phone ? ` · ${esc(p.phone)}` : ""}</div>
  <div class="meta">${p.last_seen ? esc(t("last_contact", { t: agoText(p.last_seen) })) : esc(t("never_seen"))}</div>
  <p class="row">${p.disabled ? `<button type="button" data-action="person" data-verb="enable">${esc(t("enable"))}</button>`
    : `<button type="button" data-action="person" data-verb="disable">${esc(t("disable"))}</button>`}
    <button type="button" data-action="person" data-verb="move">${esc(t("move"))}</button>
    <button type="button" data-action="person" data-verb="reset">${esc(t("reset"))}</button></p></div>`;

async function person(el) {
  const box = el.closest("[data-user]");
  const verb = el.dataset.verb;
  let body;
  if (verb === "move") {
    const region = prompt(t("move_to"));
    if (!region) return;
    body = { region: region.trim() };
  }
  if (verb === "reset" && !confirm(t("reset_confirm"))) return;
  try {
    const p = await apiJson(`/api/v1/admin/people/${box.dataset.user}/${verb}`, { method: "POST", body });
    if (p.activation_code) showCode(p);
    box.outerHTML = card(p);
  } catch (e) { toast(problemText(e)); }
}

function showCode(p) {
  $("#people-list").insertAdjacentHTML("beforebegin", `<p class="banner" data-testid="activation-code">${esc(t("code_once", { name: p.display_name, code: p.activation_code, days: p.activation_expires_days }))}</p>`);
}

async function create(e) {
  e.preventDefault();
  try {
    const p = await apiJson("/api/v1/admin/people", { method: "POST", body: {
      username: $("#np-username").value.trim(), display_name: $("#np-name").value.trim(), phone: $("#np-phone").value.trim(),
      role: $("#np-role").value, region: $("#np-region").value.trim() } });
    showCode(p);
    e.target.reset();
    $("#people-list").insertAdjacentHTML("afterbegin", card(p));
  } catch (x) { toast(problemText(x)); }
}

async function sendRoster(dryRun) {
  const form = new FormData();
  form.append("file", roster, roster.name);
  // multipart: api() sets no Content-Type for a non-JSON body, the browser adds the boundary
  const res = await api(`/api/v1/admin/people/roster?dry_run=${dryRun}`, { method: "POST", body: form });
  return res.json();
}

async function check() {
  const out = $("#roster-result");
  if (!roster) return;
  try {
    const r = await sendRoster(true);
    $("#roster-import").disabled = r.bad_rows > 0;
    out.innerHTML = r.bad_rows === 0 ? `<p class="ok">${esc(t("roster_ok", { n: r.rows }))}</p>`
      : `<p class="err">${esc(t("roster_bad", { bad: r.bad_rows, n: r.rows }))}</p><ul id="roster-problems">${r.problems.map((p) =>
        `<li data-row="${p.row}" data-code="${esc(p.code)}">${esc(t("row_n", { n: p.row }))} ${esc(p.username)}：${esc(lang() === "en" ? p.en : p.zh)}</li>`).join("")}</ul>`;
  } catch (e) { out.innerHTML = `<p class="err">${esc(problemText(e))}</p>`; }
}

async function doImport() {
  const out = $("#roster-result");
  try {
    const r = await sendRoster(false);
    const url = URL.createObjectURL(new Blob([r.codes_csv], { type: "text/csv;charset=utf-8" }));
    out.innerHTML = `<p class="ok" data-testid="imported">${esc(t("imported", { n: r.created.length }))}</p>
      <p><a href="${url}" download="activation-codes.csv" data-testid="download-codes">${esc(t("download_codes"))}</a></p>`;
    $("#roster-import").disabled = true;
    roster = null;
    await list("", "");
    out.scrollIntoView({ block: "center" }); // the download is the one thing to do now (above the tabs)
  } catch (e) { out.innerHTML = `<p class="err">${esc(problemText(e))}</p>`; }
}

export const actions = { person, check, import: doImport };
