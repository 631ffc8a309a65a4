// 上报: a new report in under 30 s, offline: category, colour, description, photos, GPS and micro-grid.
import * as store from "../db.js";
import { t } from "../i18n.js";
import { newItem } from "../core/outbox.js";
import { enqueue } from "../sync.js";
import { current, redraw } from "../router.js";
import { $, esc, toast, view } from "../ui.js";
import { categoryName } from "./data.js";
import { bindForm, checkDraft, form, formActions, newDraft, reportForm, reportFromDraft, storePhotos, updateWhere } from "./form.js";
import { foundMicroGrid, geo, startGeo } from "./location.js";

export async function render() {
  if (!form.draft || form.draft.mode !== "new") form.draft = newDraft();
  startGeo();
  view().innerHTML = `<h2>${esc(t("capture_title"))}</h2>` + (await reportForm(form.draft)) +
    `<button class="primary" type="button" data-action="save-report">${esc(t("save_report"))}</button>`;
  bindForm();
  updateWhere();
}

async function saveReport() {
  const draft = form.draft;
  // an automatic micro-grid from the cached polygons, unless the user chose one
  if (!draft.micro_grid && geo.fix) {
    const f = await foundMicroGrid();
    if (f) draft.auto_micro_grid = f.properties.code;
  }
  const report = reportFromDraft(draft);
  if (!report.micro_grid_id && draft.auto_micro_grid) report.micro_grid_id = draft.auto_micro_grid;
  const problem = checkDraft(draft, report);
  if (problem) { $("#form-error").textContent = problem; return; }
  await storePhotos(draft.photos);
  const label = `${await categoryName(report.category)} · ${report.description.slice(0, 30)}`;
  const item = { ...newItem({ id: crypto.randomUUID(), opId: crypto.randomUUID(), seq: await store.nextSeq(), type: "report.create",
    body: { report }, photos: report.photos, now: Date.now(), label }), owner: current.me?.username };
  await enqueue(item);
  form.draft = null;
  toast(t("saved"));
  redraw();
}

export const actions = { ...formActions, "save-report": saveReport };
