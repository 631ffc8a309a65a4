// A case in the console (#review/<id>): fields, light and due time, flags, photos by role (thumbnail → display
// size → original), notes, duplicates, the case's conflicts, the timeline, and the actions the workflow table
// allows for its state and my role, sent with the page's base_version; the answer is shown above the page.
// Assigning is picking a person (GET /cases/<id>/assignees: the grid's workers first, names and workload, the
// deadline that applies); reject and close-out ask for confirmation; a resubmitted case shows what changed
// since it was returned.
import { apiJson } from "../api.js";
import { t } from "../i18n.js";
import { isoWithOffset } from "../core/time.js";
import { current, go } from "../router.js";
import { $, deadlineLine, esc, flagChips, riskChip, stateChip, toast, view } from "../ui.js";
import { blobUrl, categoryMap, download, failed, fieldName, fmtVal, loadRegions, problemText, regionName, short, when, workflow } from "./common.js";
import { conflictCard, resolveConflict } from "./conflicts.js";

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
let lastResult = null; // the answer to the last action, shown on the page drawn after it

export async function render(id) {
  const me = current.me;
  view().innerHTML = `<p><a class="btn" href="#queue">← ${esc(t("back_queue"))}</a></p><p class="loading">…</p>`;
  let c, cats, wf;
  try {
    [c, cats, wf] = await Promise.all([apiJson(`/api/v1/cases/${encodeURIComponent(id)}`), categoryMap(), workflow(), loadRegions()]);
  } catch (e) { view().querySelector(".loading")?.remove(); return failed(e); }
  const name = (u) => (u ? c.display_names?.[u] || u : "—");
  const allowed = wf.filter((w) => w.state === c.state && (w.roles.includes(me.role) || (w.roles.includes("assignee") && c.assignee === me.username)
    || (w.roles.includes("reporter") && c.reporter === me.username)) && w.needs.every((n) => (n === "level_below_city" ? c.level !== "city"
    : n === "not_suspended" ? !c.suspended : n === "suspended" ? c.suspended : true)));
  const result = lastResult?.id === id ? lastResult.html : "";
  lastResult = null;
  const openConflicts = c.conflicts.filter((x) => x.status === "open");
  view().innerHTML = `<p><a class="btn" href="#queue">← ${esc(t("back_queue"))}</a></p>
    <h2 data-testid="case-title">${esc(c.number)} · ${esc(cats.get(c.category) || c.category)} ${riskChip(c.risk_level)}</h2>
    <div id="act-result" aria-live="polite">${result}</div>
    <div class="cols">
    <div>
      <div class="card"><dl class="kv">
        <dt>${esc(t("state"))}</dt><dd data-testid="review-state" data-state="${esc(c.state)}">${stateChip(c.state)}${c.suspended ? ` <span class="chip st">${esc(t("suspended"))}</span>` : ""}</dd>
        <dt>${esc(t("risk"))}</dt><dd>${riskChip(c.risk_level)}</dd>
        <dt>${esc(t("light"))}</dt><dd data-testid="review-deadline">${deadlineLine(c, { leftMinutes: c.left_minutes }) || "—"}${c.due_at ? ` ${esc(t("due_at"))} ${esc(when(c.due_at))}` : ""}</dd>
        <dt>${esc(t("level"))}</dt><dd>${esc(t("level_" + c.level))}</dd>
        <dt>${esc(t("grid"))}</dt><dd>${esc(regionName(c.grid_id))}</dd>
        <dt>${esc(t("micro_grid"))}</dt><dd>${esc(c.micro_grid_id || "—")}</dd>
        <dt>${esc(t("location"))}</dt><dd>${esc(fmtVal("location", c.location))}</dd>
        <dt>${esc(t("reporter"))}</dt><dd>${esc(name(c.reporter))}</dd>
        <dt>${esc(t("reported_at"))}</dt><dd>${esc(when(c.reported_at))}</dd>
        <dt>${esc(t("assignee"))}</dt><dd data-testid="review-assignee">${esc(name(c.assignee))}${c.unit ? ` · ${esc(c.unit)}` : ""}</dd>
        ${c.flags.length ? `<dt>${esc(t("flags"))}</dt><dd>${flagChips(c.flags)}</dd>` : ""}
        ${c.missing_photos.length ? `<dt>${esc(t("photo_missing"))}</dt><dd class="warn">${c.missing_photos.length}</dd>` : ""}
      </dl><p class="desc-full">${esc(c.description || "")}</p></div>
      ${sinceReturn(c, cats)}
      ${["evidence", "rectification"].map((role) => `<h3>${esc(t(role))} (${c.photos_by_role[role].length})</h3>
        <div class="thumbs" data-role="${role}">${c.photos_by_role[role].map((p) => `<button type="button" class="thumb thumbbtn" data-action="photo" data-sha="${esc(p.sha256)}" aria-label="${esc(t(role))}"${p.missing ? " disabled" : ""}>${p.missing ? `<span class="hint">${esc(t("photo_missing"))}</span>` : `<img alt="${esc(t(role))}" data-thumb="${esc(p.sha256)}">`}</button>`).join("") || `<p class="hint">${esc(t("no_photos"))}</p>`}</div>`).join("")}
      ${c.notes.length ? `<h3>${esc(t("notes"))}</h3>${c.notes.map((n) => `<div class="card"><div class="meta">${esc(name(n.author))} · ${esc(when(n.created_at))}</div>${esc(n.text)}</div>`).join("")}` : ""}
      ${c.duplicates.length ? `<h3>${esc(t("duplicates"))}</h3><ul class="plain">${c.duplicates.map((d) => `<li><a class="btn" href="#review/${esc(d.id)}">${esc(d.number)}</a> ${esc(d.relation === "merged_into_this" ? t("s_merged") : t("flag_possible_duplicate"))}</li>`).join("")}</ul>` : ""}
      ${c.merged_into ? `<p><a class="btn" href="#review/${esc(c.merged_into)}">${esc(t("fld_merged_into"))} →</a></p>` : ""}
    </div>
    <div>
      <h3>${esc(t("actions"))}</h3>
      <div class="row" id="act-buttons">${allowed.map((w) => `<button type="button" data-action="act" data-act="${esc(w.action)}" data-needs="${esc(w.needs.join(","))}"${["reject", "return"].includes(w.action) ? ' class="danger"' : ""}>${esc(t("a_" + w.action))}</button>`).join("") || `<p class="hint">${esc(t("no_actions"))}</p>`}</div>
      <form id="act-form" class="card" hidden></form>
      <h3 id="conflicts">${esc(t("conflicts_title"))} (${openConflicts.length})</h3>
      <div data-testid="case-conflicts">${openConflicts.map((x) => conflictCard(x, cats)).join("") || `<p class="hint">${esc(t("none_open"))}</p>`}
        ${c.conflicts.filter((x) => x.status !== "open").map((x) => `<p class="meta">${esc(fieldName(x.field))}: ${esc(t("c_resolved", { c: fmtVal(x.field, x.resolved_value, cats) }))}</p>`).join("")}</div>
      <h3>${esc(t("timeline"))}</h3>
      <ol class="timeline">${c.timeline.slice().reverse().map((e) => timelineItem(e, cats, name)).join("")}</ol>
    </div></div>
    <dialog id="photo-dlg"><div class="dlg-body"><img id="dlg-img" alt=""><div class="row"><button type="button" data-action="original" id="dlg-orig">${esc(t("original"))}</button><button type="button" data-action="dlg-close">${esc(t("close"))}</button></div></div></dialog>`;
  $("#act-form").addEventListener("submit", (e) => { e.preventDefault(); submitAction(c); });
  view().dataset.caseId = c.id;
  view().dataset.version = c.version;
  view().caseData = c;
  for (const img of document.querySelectorAll("img[data-thumb]")) {
    blobUrl(img.dataset.thumb, "thumb").then((u) => { img.src = u; }).catch(() => { img.alt = t("photo_missing"); });
  }
}

/** What the reporter changed after the case was returned (from the event log): field from → to, notes, photos. */
function sinceReturn(c, cats) {
  const d = c.changed_since_return;
  if (!d || !d.resubmitted_at) return "";
  const fields = Object.entries(d.fields).map(([f, [from, to]]) => `<li><span class="meta">${esc(fieldName(f))}</span>: ${esc(fmtVal(f, from, cats))} → <strong>${esc(fmtVal(f, to, cats))}</strong></li>`);
  const notes = d.notes.map((n) => `<li>${esc(t("added_note"))}: ${esc(n.text)}</li>`);
  const photos = d.photos.length ? [`<li>${esc(t("added_photos", { n: d.photos.length }))}</li>`] : [];
  const all = [...fields, ...notes, ...photos];
  return `<div class="card" data-testid="since-return"><h3>${esc(t("changed_since_return"))}</h3>
    <p class="meta">${esc(t("return_reason"))}: ${esc(d.reason || "")} · ${esc(t("resubmitted", { t: when(d.resubmitted_at) }))}</p>
    ${all.length ? `<ul class="changes">${all.join("")}</ul>` : `<p class="hint">${esc(t("no_changes"))}</p>`}</div>`;
}

function timelineItem(e, cats, name) {
  const action = e.action === "transition" && e.data?.action ? t("a_" + e.data.action) : (t("ev_" + e.action) === "ev_" + e.action ? e.action : t("ev_" + e.action));
  const val = (f, v) => (f === "assignee" && v ? name(v) : fmtVal(f, v, cats)); // people by name
  const changes = Object.entries(e.changes || {}).map(([f, [from, to]]) => `<li><span class="meta">${esc(fieldName(f))}</span>: ${esc(val(f, from))} → <strong>${esc(val(f, to))}</strong></li>`).join("");
  const extra = [e.data?.reason && `${t("reason")}: ${e.data.reason}`, e.data?.choose && `${t("c_resolved", { c: e.data.choose })}`].filter(Boolean);
  return `<li data-version="${e.version}"><div><strong>v${e.version} ${esc(action)}</strong> · ${esc(name(e.actor))} · ${esc(when(e.at))}</div>
    <div class="meta">${esc(t("device"))} ${esc(e.device_id || "—")}${e.client_time ? ` · ${esc(when(e.client_time))}` : ""}${e.op_id ? ` · op ${esc(short(e.op_id))}` : ""}</div>
    ${changes ? `<ul class="changes">${changes}</ul>` : ""}${extra.map((x) => `<div class="meta">${esc(x)}</div>`).join("")}</li>`;
}

/** Who may take the case, as a picker: display names with their grid and open workload, the grid's first. */
async function assigneePicker(c) {
  let r;
  try { r = await apiJson(`/api/v1/cases/${encodeURIComponent(c.id)}/assignees`); } catch (e) { return `<p class="err">${esc(problemText(e))}</p>`; }
  const option = (p) => `<option value="${esc(p.username)}"${p.current ? " selected" : ""}>${esc(p.display_name)} · ${esc(p.region_name || "")} · ${esc(t("workload", { n: p.open_cases }))}</option>`;
  const group = (label, list) => (list.length ? `<optgroup label="${esc(label)}">${list.map(option).join("")}</optgroup>` : "");
  const d = r.deadline;
  const due = d?.due_at ? `${t("stage_" + d.stage)} ${when(d.due_at)} · ${t("clock_" + d.clock)}` : t("no_deadline");
  return `<label class="lbl" for="act-assignee">${esc(t("pick_assignee"))}</label>
    <select id="act-assignee" data-testid="assignee-picker"><option value="">—</option>
      ${group(t("this_grid"), r.people.filter((p) => p.same_grid))}${group(t("this_town"), r.people.filter((p) => !p.same_grid))}</select>
    <p class="meta" data-testid="assign-deadline">${esc(t("deadline_applies", { d: due }))}</p>`;
}

/** The small form of an action that needs input: a reason, an assignee or unit, a merge target, a note; and
 * the confirmation of the actions that end a case (reject, close-out). */
async function actionForm(action, needs, c) {
  const form = $("#act-form");
  const parts = [];
  if (CONFIRM.includes(action)) parts.push(`<p class="warn" data-testid="act-confirm-text">${esc(t("confirm_" + action))}</p>`);
  if (needs.includes("reason")) parts.push(`<label class="lbl" for="act-reason">${esc(t("reason"))}</label><textarea id="act-reason" required maxlength="500"></textarea>`);
  if (needs.includes("assignee_or_unit")) {
    parts.push(`${await assigneePicker(c)}
      <label class="lbl" for="act-unit">${esc(t("or_unit"))}</label><input type="text" id="act-unit" value="${esc(c.unit || "")}">`);
  }
  if (needs.includes("target")) {
    parts.push(`<label class="lbl" for="act-target">${esc(t("merge_target"))}</label><input type="text" id="act-target" autocapitalize="none">
      ${c.duplicates.filter((d) => d.relation === "possible_duplicate_of").map((d) => `<button type="button" data-action="pick-target" data-number="${esc(d.number)}">${esc(d.number)}</button>`).join(" ")}`);
  }
  if (needs.includes("rectification_photo_or_note")) parts.push(`<label class="lbl" for="act-note">${esc(t("note_text"))}</label><textarea id="act-note" required></textarea>`);
  form.innerHTML = `<strong>${esc(t("a_" + action))}</strong>${parts.join("")}<p class="err" id="act-error"></p>
    <div class="row"><button type="submit" class="primary inline" data-act-confirm="${esc(action)}">${esc(t("confirm"))} ${esc(t("a_" + action))}</button>
    <button type="button" data-action="act-cancel">${esc(t("cancel"))}</button></div>`;
  form.dataset.act = action;
  form.hidden = false;
  form.querySelector("textarea, input, select, [type=submit]")?.focus();
}

async function submitAction(c, action = $("#act-form").dataset.act) {
  const body = { action, base_version: c.version };
  const err = $("#act-error");
  const val = (sel) => $(sel)?.value.trim() || "";
  if ($("#act-reason")) { body.reason = val("#act-reason"); if (!body.reason) { err.textContent = t("reason_needed"); return; } }
  if ($("#act-assignee")) {
    if (val("#act-assignee")) body.assignee = val("#act-assignee");
    if (val("#act-unit")) body.unit = val("#act-unit");
    if (!body.assignee && !body.unit) { err.textContent = t("need_assignee"); return; }
  }
  if ($("#act-note")) { const text = val("#act-note"); if (!text) { err.textContent = t("resolve_needs"); return; } body.note = { text, captured_at: isoWithOffset(new Date()) }; }
  if ($("#act-target")) {
    const v = val("#act-target");
    if (!v) { err.textContent = t("need_target"); return; }
    if (UUID_RE.test(v)) body.target = v.toLowerCase();
    else {
      try {
        const hit = (await apiJson(`/api/v1/cases?${new URLSearchParams({ q: v, limit: 5 })}`)).find((x) => x.number === v);
        if (!hit) { err.textContent = t("target_not_found"); return; }
        body.target = hit.id;
      } catch (e) { err.textContent = problemText(e); return; }
    }
  }
  for (const b of document.querySelectorAll("#act-buttons button, #act-form button")) b.disabled = true;
  try {
    const r = await apiJson(`/api/v1/cases/${encodeURIComponent(c.id)}/transitions`, { method: "POST", body });
    const stale = r.flags?.includes("stale_transition");
    const msg = r.status === "conflict" ? t("res_conflict", { a: t("a_" + action) }) : stale ? t("res_stale") : t("res_applied", { a: t("a_" + action) });
    lastResult = { id: r.case?.id || c.id, html: `<p class="card ${r.status === "conflict" ? "err" : "ok"}" data-testid="act-result" data-status="${esc(r.status)}">${esc(msg)}${(r.conflicts || []).map((x) => ` — ${esc(fieldName(x.field))}: ${esc(t("c_server"))} ${esc(fmtVal(x.field, x.server))}, ${esc(t("c_client"))} ${esc(fmtVal(x.field, x.client))}`).join("")} ${flagChips(r.flags)}</p>` };
    if (r.case?.id && r.case.id !== c.id) return go(`#review/${r.case.id}`);
    await render(c.id);
  } catch (e) {
    for (const b of document.querySelectorAll("#act-buttons button, #act-form button")) b.disabled = false;
    if ($("#act-form").hidden) $("#act-result").innerHTML = `<p class="card err" role="alert" data-testid="act-result" data-status="error">${esc(problemText(e))}</p>`;
    else err.textContent = problemText(e);
  }
}

const NEEDS_INPUT = ["reason", "assignee_or_unit", "target", "rectification_photo_or_note"];
const CONFIRM = ["reject", "verify_close"]; // they end the case: asked twice

export const actions = {
  async act(el) {
    const c = view().caseData;
    const needs = (el.dataset.needs || "").split(",").filter((n) => NEEDS_INPUT.includes(n));
    if (needs.length || CONFIRM.includes(el.dataset.act)) await actionForm(el.dataset.act, needs, c);
    else { $("#act-form").hidden = true; $("#act-form").innerHTML = ""; await submitAction(c, el.dataset.act); }
  },
  "act-cancel": () => { $("#act-form").hidden = true; },
  "pick-target": (el) => { $("#act-target").value = el.dataset.number; },
  "resolve-conflict": resolveConflict,
  async photo(el) {
    const dlg = $("#photo-dlg");
    $("#dlg-orig").dataset.sha = el.dataset.sha;
    $("#dlg-img").removeAttribute("src");
    dlg.showModal();
    try { $("#dlg-img").src = await blobUrl(el.dataset.sha, "display"); } catch (e) { toast(problemText(e)); }
  },
  async original(el) {
    try { await download(`/api/v1/media/${el.dataset.sha}?variant=original`, `${el.dataset.sha}-original.jpg`); } catch (e) { toast(problemText(e)); }
  },
  "dlg-close": () => { $("#photo-dlg")?.close(); },
};
