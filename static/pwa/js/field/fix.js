// 修改: a refused item edited and sent again. A report keeps its case id; it keeps its op_id only when its
// content is unchanged (core/outbox.js editItem).
import * as store from "../db.js";
import { t } from "../i18n.js";
import { editItem } from "../core/outbox.js";
import { requestSync } from "../sync.js";
import { go } from "../router.js";
import { $, esc, toast, view } from "../ui.js";
import { bindForm, checkDraft, form, formActions, reportForm, reportFromDraft, storePhotos } from "./form.js";
import { cardActions, itemCard } from "./outbox.js";

export async function render(id) {
  const item = await store.getItem(id);
  if (!item) return go("#outbox");
  if (item.type === "report.create") {
    const r = item.body.report;
    const photos = [];
    for (const sha of r.photos || []) {
      const p = await store.getPhoto(sha);
      photos.push({ sha256: sha, blob: p?.blob, size: p?.size, exif: p?.exif });
    }
    if (!form.draft || form.draft.mode !== id) {
      form.draft = { mode: id, caseId: r.id, category: r.category, risk: r.risk_level, description: r.description || "", photos,
        micro_grid: r.micro_grid_id || "", on_spot: Boolean(r.handled_on_spot), started: r.captured_at, location: r.location || null, busy: 0 };
    }
    view().innerHTML = `<h2>${esc(t("edit"))}</h2>${itemCard(item, new Map())}` + (await reportForm(form.draft)) +
      `<div class="row"><button class="primary" type="button" data-action="save-fix" data-id="${esc(id)}">${esc(t("save_resend"))}</button>
       <a class="btn" href="#outbox">${esc(t("cancel"))}</a></div>`;
    bindForm();
    const where = $("#where");
    if (where) where.innerHTML = r.location ? `<p>${r.location.lat}, ${r.location.lon} ±${r.location.accuracy_m ?? "?"} m</p>` : "";
  } else {
    const note = item.body.note || {};
    view().innerHTML = `<h2>${esc(t("edit"))}</h2>${itemCard(item, new Map())}
      <label class="lbl" for="note-text">${esc(t("note"))}</label><textarea id="note-text">${esc(note.text || "")}</textarea>
      <div class="row" style="margin-top:10px"><button class="primary" type="button" data-action="save-fix" data-id="${esc(id)}">${esc(t("save_resend"))}</button>
      <a class="btn" href="#outbox">${esc(t("cancel"))}</a></div>`;
  }
}

async function saveFix(el) {
  const item = await store.getItem(el.dataset.id);
  if (!item) return;
  let body;
  let photos = item.photos;
  if (item.type === "report.create") {
    const draft = form.draft;
    const report = reportFromDraft(draft);
    if (!draft.location) delete report.location;
    const problem = checkDraft(draft, report);
    if (problem) { $("#form-error").textContent = problem; return; }
    await storePhotos(draft.photos);
    body = { report };
    photos = report.photos;
  } else {
    const text = $("#note-text").value.trim();
    body = { ...item.body, note: { ...(item.body.note || { id: crypto.randomUUID(), photos: [] }), text } };
  }
  const seq = await store.nextSeq(); // taken up front; unused when the op stays the same
  const updated = editItem(item, body, { newOpId: () => crypto.randomUUID(), newSeq: () => seq, now: Date.now(), photos });
  await store.putItems([updated]);
  form.draft = null;
  requestSync("fix");
  toast(t("queued"));
  go("#outbox");
}

export const actions = { ...formActions, ...cardActions, "save-fix": saveFix };
