// A case of mine (任务 → a case): its fields, deadline and photos; the whole case I may see (how it ended, notes
// and after-photos of everyone, what reviewers did: GET /api/v1/cases/<id>, kept for offline); 开始处置, a note
// or 整改完成 with after-photos; and, for a report returned to me (退回补充), the reviewer's reason and a form to
// change what was asked and resubmit. Everything I do is queued in the outbox (offline too), the state shown
// as it will be once sent.
import * as store from "../db.js";
import { api, apiJson, lang } from "../api.js";
import { t } from "../i18n.js";
import { newItem, pendingOnCase } from "../core/outbox.js";
import { isoWithOffset } from "../core/time.js";
import { enqueue } from "../sync.js";
import { current, go, redraw } from "../router.js";
import { $, deadlineLine, esc, riskChip, stateChip, toast, view } from "../ui.js";
import { markTaskSeen } from "../watch.js";
import { categoryName, effectiveCase, localCases } from "./data.js";
import { addPhotos, bindForm, form, formActions, photoUrl, reportForm, storePhotos, thumbs } from "./form.js";

const ENDED = new Set(["closed", "rejected", "merged"]);
const when = (iso) => (iso ? new Date(iso).toLocaleString(lang() === "en" ? "en" : "zh-CN", { hour12: false }) : "");

/** The full page of the case: fresh when online (and kept), the last kept copy when not. */
async function fullPage(id) {
  const key = `page:${id}`;
  if (navigator.onLine) {
    try {
      const page = await apiJson(`/api/v1/cases/${encodeURIComponent(id)}`);
      await store.setCached(key, page);
      return page;
    } catch { /* offline after all, or gone: the kept copy */ }
  }
  return (await store.getCached(key)) || null;
}

export async function render(id) {
  const me = current.me;
  const { cases, items } = await localCases();
  const local = cases.find((x) => x.id === id);
  if (!local) return go("#tasks");
  markTaskSeen(id);
  const pending = pendingOnCase(items, local.id);
  const page = local.local ? null : await fullPage(id);
  if (!view().isConnected || current.name !== "case") return;
  const c = effectiveCase(page && page.version >= local.version ? { ...local, ...page } : local, pending);
  const workflow = (await store.getCached("workflow")) || [];
  const can = (action) => !c.local && workflow.some((w) => w.state === c.state && w.action === action &&
    ((w.roles.includes(me?.role) && me?.role !== "volunteer") || (w.roles.includes("assignee") && c.assignee === me?.username)
      || (w.roles.includes("reporter") && c.reporter === me?.username)));
  const answering = c.state === "returned" && c.reporter === me?.username && can("resubmit");
  const name = (u) => page?.display_names?.[u] || u || "—";
  view().innerHTML = `<p><a class="btn" href="#tasks">← ${esc(t("back"))}</a></p>
    <h2>${esc(await categoryName(c.category))} ${riskChip(c.risk_level)}</h2>
    <dl class="kv"><dt>${esc(t("number"))}</dt><dd>${esc(c.number || t("not_synced"))}</dd>
      <dt>${esc(t("state"))}</dt><dd data-testid="case-state" data-state="${esc(c.state)}">${stateChip(c.state)}${c.state !== local.state ? ` (${esc(t("not_synced"))})` : ""}</dd>
      ${c.due_at && c.state === local.state ? `<dt>${esc(t("light"))}</dt><dd>${deadlineLine(c, { leftMinutes: page?.left_minutes ?? null })}<div class="meta">${esc(t("due"))} ${esc(when(c.due_at))}</div></dd>` : ""}
      <dt>${esc(t("micro_grid"))}</dt><dd>${esc(c.micro_grid_id || "—")}</dd>
      <dt>${esc(t("reported_at"))}</dt><dd>${esc(when(c.reported_at))}</dd>
      ${c.assignee ? `<dt>${esc(t("assignee"))}</dt><dd>${esc(name(c.assignee))}</dd>` : ""}
      ${c.flags?.length ? `<dt>${esc(t("flags"))}</dt><dd>${esc(c.flags.join(", "))}</dd>` : ""}</dl>
    <p>${esc(c.description || "")}</p>
    <div class="thumbs" id="case-photos"></div>
    ${returnedBox(c, page, local)}
    ${outcomeBox(c, page)}
    ${pending.length ? `<p class="warn">${esc(t("pending_ops", { n: pending.length }))}</p>` : ""}
    ${answering ? `<form id="answer-form" class="card"><h3>${esc(t("answer_return"))}</h3><p class="hint">${esc(t("resubmit_hint"))}</p>
      <div id="answer-fields"></div>
      <button type="button" class="primary" data-action="resubmit" data-id="${esc(c.id)}">${esc(t("resubmit"))}</button></form>` : ""}
    <div class="actions row" style="margin:12px 0">
      ${can("start") ? `<button type="button" data-action="start" data-id="${esc(c.id)}">${esc(t("start"))}</button>` : ""}
    </div>
    ${c.local || ENDED.has(c.state) || answering ? "" : `<form id="note-form" class="card">
      <label class="lbl" for="note-text">${esc(t("note"))}</label><textarea id="note-text"></textarea>
      <label class="btn filebtn" style="margin-top:8px">${esc(t("after_photos"))}<input type="file" id="note-photos" accept="image/*" capture="environment" multiple></label>
      <div class="thumbs" id="note-thumbs"></div><p class="err" id="form-error"></p>
      <div class="row" style="margin-top:8px">
        <button type="button" data-action="note" data-id="${esc(c.id)}">${esc(t("add_note"))}</button>
        ${can("resolve") ? `<button type="button" class="primary" style="width:auto" data-action="resolve" data-id="${esc(c.id)}">${esc(t("resolve"))}</button>` : ""}
      </div></form>`}
    ${page ? notesBox(page, name) + timelineBox(page, name) : ""}`;
  if (answering) {
    if (!form.draft || form.draft.mode !== `answer:${c.id}`) {
      form.draft = { mode: `answer:${c.id}`, category: c.category, risk: c.risk_level, description: c.description || "",
        micro_grid: c.micro_grid_id || "", photos: [], busy: 0, on_spot: false };
    }
    $("#answer-fields").innerHTML = await reportForm(form.draft);
    bindForm();
  } else if (!c.local && !ENDED.has(c.state)) {
    if (!form.draft || form.draft.mode !== `note:${c.id}`) form.draft = { mode: `note:${c.id}`, photos: [], busy: 0, description: "" };
    $("#note-thumbs").innerHTML = thumbs(form.draft);
    $("#note-photos")?.addEventListener("change", (e) => addPhotos(form.draft, [...e.target.files], "#note-thumbs"));
  }
  loadPhotos("#case-photos", (c.photos || []).map((p) => p.sha256));
  if (page?.resolution?.photos?.length) loadPhotos("#outcome-photos", page.resolution.photos);
}

/** What the reviewer asked for when they returned the case. */
function returnedBox(c, page, local) {
  if (c.state !== "returned" && local.state !== "returned") return "";
  const reason = page?.returned?.reason || local.return_reason;
  if (!reason) return "";
  return `<div class="card warn" data-testid="case-return-reason" role="note"><strong>${esc(t("return_reason"))}</strong>：${esc(reason)}</div>`;
}

/** How the case ended (or where it stands): the state, the resolution note and the after-photos. */
function outcomeBox(c, page) {
  const r = page?.resolution;
  if (!r) return "";
  return `<div class="card" data-testid="outcome"><h3>${esc(t("outcome"))}: ${stateChip(c.state)}</h3>
    ${r.note ? `<p><strong>${esc(t("resolution_note"))}</strong>：<span data-testid="resolution-note">${esc(r.note)}</span></p>` : ""}
    ${r.action === "reject" && r.reason ? `<p><strong>${esc(t("reject_reason_shown"))}</strong>：${esc(r.reason)}</p>` : ""}
    ${c.closed_at ? `<p class="meta">${esc(t("closed_at"))} ${esc(when(c.closed_at))}</p>` : ""}
    <div class="thumbs" id="outcome-photos"></div></div>`;
}

function notesBox(page, name) {
  if (!page.notes?.length) return "";
  return `<h3>${esc(t("notes_title"))}</h3>${page.notes.map((n) => `<div class="card" data-testid="note"><div class="meta">${esc(name(n.author))} · ${esc(when(n.created_at))}</div>${esc(n.text)}</div>`).join("")}`;
}

function timelineBox(page, name) {
  const what = (e) => (e.action === "transition" && e.data?.action ? t("a_" + e.data.action) : t("ev_" + e.action) === "ev_" + e.action ? e.action : t("ev_" + e.action));
  return `<h3>${esc(t("timeline_title"))}</h3><ol class="timeline" data-testid="field-timeline">${page.timeline.slice().reverse().map((e) =>
    `<li><strong>${esc(what(e))}</strong> · ${esc(name(e.actor))} · ${esc(when(e.at))}${e.data?.reason ? `<div class="meta">${esc(t("reason"))}: ${esc(e.data.reason)}</div>` : ""}</li>`).join("")}</ol>`;
}

async function loadPhotos(selector, hashes) {
  const box = $(selector);
  for (const sha of hashes.slice(0, 8)) {
    const local = await store.getPhoto(sha);
    let url = local?.blob ? photoUrl(sha, local.blob) : photoUrl(sha);
    if (!url && navigator.onLine) {
      try {
        const res = await api(`/api/v1/media/${sha}?variant=thumb`);
        url = photoUrl(sha, await res.blob());
      } catch { /* not there yet, or offline */ }
    }
    if (url && box?.isConnected) box.insertAdjacentHTML("beforeend", `<div class="thumb"><img alt="${esc(t("photos"))}" src="${esc(url)}"></div>`);
  }
}

async function queue(c, type, body, photos = [], text = "") {
  const item = { ...newItem({ id: crypto.randomUUID(), opId: crypto.randomUUID(), seq: await store.nextSeq(), type, body,
    photos, now: Date.now(), label: `${c.number || ""} ${await categoryName(c.category)} · ${text.slice(0, 30)}` }),
    owner: current.me?.username };
  await enqueue(item);
}

/** 开始处置, 添加备注 or 整改完成: an outbox item on the case, with the note and after-photos when given. */
async function caseOp(el) {
  const action = el.dataset.action;
  const draft = form.draft;
  const c = (await localCases()).cases.find((x) => x.id === el.dataset.id);
  if (!c) return;
  const text = $("#note-text")?.value.trim() || "";
  const role = action === "resolve" ? "rectification" : "evidence";
  const photos = (draft?.photos || []).map((p) => ({ sha256: p.sha256, role }));
  if (draft?.busy) { $("#form-error").textContent = t("processing"); return; }
  const note = text || photos.length ? { id: crypto.randomUUID(), text, photos, captured_at: isoWithOffset(new Date()) } : null;
  let type, body;
  if (action === "note") {
    if (!note) { $("#form-error").textContent = t("resolve_needs"); return; }
    type = "case.note"; body = { case_id: c.id, note };
  } else {
    if (action === "resolve" && !note) { $("#form-error").textContent = t("resolve_needs"); return; }
    type = "case.transition"; body = { case_id: c.id, base_version: c.version, action };
    if (note) body.note = note;
  }
  await storePhotos(draft?.photos || []);
  form.draft = null;
  await queue(c, type, body, photos.map((p) => p.sha256), text);
  toast(t("queued"));
  redraw();
}

/** 重新提交: what changed (case.update), the new photos (case.note), then resubmit, in that order, all made
 * on the version the reviewer returned (the server merges the edit field by field). */
async function resubmit(el) {
  const draft = form.draft;
  const c = (await localCases()).cases.find((x) => x.id === el.dataset.id);
  if (!c || !draft) return;
  if (draft.busy) { $("#form-error").textContent = t("processing"); return; }
  const now = { category: draft.category, risk_level: draft.risk, description: draft.description.trim(),
    micro_grid_id: draft.micro_grid || c.micro_grid_id };
  const changes = Object.fromEntries(Object.entries(now).filter(([k, v]) => v && v !== c[k]));
  if (!Object.keys(changes).length && !draft.photos.length) { $("#form-error").textContent = t("nothing_changed"); return; }
  if (Object.keys(changes).length) await queue(c, "case.update", { case_id: c.id, base_version: c.version, changes }, [], now.description);
  if (draft.photos.length) {
    await storePhotos(draft.photos);
    const photos = draft.photos.map((p) => ({ sha256: p.sha256, role: "evidence" }));
    await queue(c, "case.note", { case_id: c.id, note: { id: crypto.randomUUID(), text: t("add_more_photos"), photos,
      captured_at: isoWithOffset(new Date()) } }, photos.map((p) => p.sha256), t("add_more_photos"));
  }
  await queue(c, "case.transition", { case_id: c.id, base_version: c.version, action: "resubmit" }, [], t("resubmit"));
  form.draft = null;
  toast(t("queued"));
  redraw();
}

export const actions = { ...formActions, start: caseOp, note: caseOp, resolve: caseOp, resubmit };
