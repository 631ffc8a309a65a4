// A case of mine (任务 → a case): its fields and photos, 开始处置, and a note or 整改完成 with after-photos,
// all queued in the outbox (offline too), the state shown as it will be once they are sent.
import * as store from "../db.js";
import { api, lang } from "../api.js";
import { t } from "../i18n.js";
import { newItem, pendingOnCase } from "../core/outbox.js";
import { isoWithOffset } from "../core/time.js";
import { enqueue } from "../sync.js";
import { current, go, redraw } from "../router.js";
import { $, esc, riskChip, stateChip, toast, view } from "../ui.js";
import { categoryName, effectiveState, localCases } from "./data.js";
import { addPhotos, form, formActions, photoUrl, storePhotos, thumbs } from "./form.js";

export async function render(id) {
  const me = current.me;
  const { cases, items } = await localCases();
  const c = cases.find((x) => x.id === id);
  if (!c) return go("#tasks");
  const pending = pendingOnCase(items, c.id);
  const state = effectiveState(c, pending);
  const workflow = (await store.getCached("workflow")) || [];
  const can = (action) => !c.local && workflow.some((w) => w.state === state && w.action === action &&
    (w.roles.includes(me?.role) || (w.roles.includes("assignee") && c.assignee === me?.username)));
  view().innerHTML = `<p><a class="btn" href="#tasks">← ${esc(t("back"))}</a></p>
    <h2>${esc(await categoryName(c.category))} ${riskChip(c.risk_level)}</h2>
    <dl class="kv"><dt>${esc(t("number"))}</dt><dd>${esc(c.number || t("not_synced"))}</dd>
      <dt>${esc(t("state"))}</dt><dd data-testid="case-state">${stateChip(state)}${state !== c.state ? ` (${esc(t("not_synced"))})` : ""}</dd>
      <dt>${esc(t("micro_grid"))}</dt><dd>${esc(c.micro_grid_id || "—")}</dd>
      <dt>${esc(t("reported_at"))}</dt><dd>${esc(c.reported_at ? new Date(c.reported_at).toLocaleString(lang() === "en" ? "en" : "zh-CN") : "")}</dd>
      ${c.flags?.length ? `<dt>${esc(t("flags"))}</dt><dd>${esc(c.flags.join(", "))}</dd>` : ""}</dl>
    <p>${esc(c.description || "")}</p>
    <div class="thumbs" id="case-photos"></div>
    ${pending.length ? `<p class="warn">${esc(t("pending_ops", { n: pending.length }))}</p>` : ""}
    <div class="actions row" style="margin:12px 0">
      ${can("start") ? `<button type="button" data-action="start" data-id="${esc(c.id)}">${esc(t("start"))}</button>` : ""}
    </div>
    ${c.local ? "" : `<form id="note-form" class="card">
      <label class="lbl" for="note-text">${esc(t("note"))}</label><textarea id="note-text"></textarea>
      <label class="btn filebtn" style="margin-top:8px">${esc(t("after_photos"))}<input type="file" id="note-photos" accept="image/*" capture="environment" multiple></label>
      <div class="thumbs" id="note-thumbs"></div><p class="err" id="form-error"></p>
      <div class="row" style="margin-top:8px">
        <button type="button" data-action="note" data-id="${esc(c.id)}">${esc(t("add_note"))}</button>
        ${can("resolve") ? `<button type="button" class="primary" style="width:auto" data-action="resolve" data-id="${esc(c.id)}">${esc(t("resolve"))}</button>` : ""}
      </div></form>`}`;
  if (!form.draft || form.draft.mode !== `note:${c.id}`) form.draft = { mode: `note:${c.id}`, photos: [], busy: 0, description: "" };
  if ($("#note-thumbs")) $("#note-thumbs").innerHTML = thumbs(form.draft);
  $("#note-photos")?.addEventListener("change", (e) => addPhotos(form.draft, [...e.target.files], "#note-thumbs"));
  loadCasePhotos(c);
}

async function loadCasePhotos(c) {
  const box = $("#case-photos");
  for (const p of (c.photos || []).slice(0, 8)) {
    const sha = p.sha256;
    const local = await store.getPhoto(sha);
    let url = local?.blob ? photoUrl(sha, local.blob) : photoUrl(sha);
    if (!url && navigator.onLine) {
      try {
        const res = await api(`/api/v1/media/${sha}?variant=thumb`);
        url = photoUrl(sha, await res.blob());
      } catch { /* not there yet, or offline */ }
    }
    if (url && box?.isConnected) box.insertAdjacentHTML("beforeend", `<div class="thumb"><img alt="${esc(p.role)}" src="${esc(url)}"></div>`);
  }
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
  const item = { ...newItem({ id: crypto.randomUUID(), opId: crypto.randomUUID(), seq: await store.nextSeq(), type, body,
    photos: photos.map((p) => p.sha256), now: Date.now(), label: `${c.number || ""} ${await categoryName(c.category)} · ${text.slice(0, 30)}` }),
    owner: current.me?.username };
  form.draft = null;
  await enqueue(item);
  toast(t("queued"));
  redraw();
}

export const actions = { ...formActions, start: caseOp, note: caseOp, resolve: caseOp };
