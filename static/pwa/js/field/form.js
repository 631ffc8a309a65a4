// The report form, shared by 上报 (a new report) and 修改 (a refused one): category, colour, description,
// photos, where. One draft at a time (the report being captured or fixed, or the note of a case page), kept
// in memory while the user moves between views.
import * as store from "../db.js";
import { lang } from "../api.js";
import { t } from "../i18n.js";
import { isoWithOffset } from "../core/time.js";
import { preparePhotoAsync } from "../photo.js";
import { current } from "../router.js";
import { $, esc, setPressed, toast } from "../ui.js";
import { categories, microGrids } from "./data.js";
import { foundMicroGrid, geo, GOOD_ACCURACY_M, onGeo } from "./location.js";

export const MAX_DESCRIPTION = 2000;

/** draft.mode: "new" (上报), an outbox item's id (修改), or "note:<case id>" (a case page). */
export const form = { draft: null };
const photoUrls = new Map(); // sha256 → object URL

export function newDraft() {
  return { mode: "new", caseId: crypto.randomUUID(), category: null, risk: null, description: "", photos: [], micro_grid: "",
    on_spot: false, started: isoWithOffset(new Date()), busy: 0 };
}

export function photoUrl(sha, blob) {
  if (!photoUrls.has(sha) && blob) photoUrls.set(sha, URL.createObjectURL(blob));
  return photoUrls.get(sha) || "";
}

export async function reportForm(d) {
  const cats = await categories();
  const mgs = await microGrids();
  return `
    <fieldset><legend>${esc(t("category"))}</legend><div class="cats">
      ${cats.map((c) => `<button type="button" class="choice" data-action="cat" data-code="${esc(c.code)}" aria-pressed="${d.category === c.code}">${esc(lang() === "en" ? c.name_en : c.name_zh)}</button>`).join("")}
    </div></fieldset>
    <fieldset><legend>${esc(t("risk"))}</legend><div class="grid3">
      ${["red", "yellow", "blue"].map((r) => `<button type="button" class="choice risk-${r}" data-action="risk" data-risk="${r}" aria-pressed="${d.risk === r}">${esc(t("risk_" + r))}</button>`).join("")}
    </div></fieldset>
    <fieldset><label class="lbl" for="description">${esc(t("description"))}</label>
      <textarea id="description" placeholder="${esc(t("description_hint"))}">${esc(d.description)}</textarea>
      <div class="counter" id="counter"></div></fieldset>
    <fieldset><legend>${esc(t("photos"))}</legend>
      <label class="btn filebtn">${esc(t("add_photos"))}<input type="file" id="photo-input" accept="image/*" capture="environment" multiple></label>
      <div class="thumbs" id="thumbs">${thumbs(d)}</div></fieldset>
    <fieldset><legend>${esc(t("location"))}</legend><div id="where"></div>
      <label class="lbl" for="micro-grid">${esc(t("micro_grid"))}</label>
      <select id="micro-grid"><option value="">${esc(t("mg_auto"))}</option>
        ${mgs.map((f) => `<option value="${esc(f.properties.code)}" ${d.micro_grid === f.properties.code ? "selected" : ""}>${esc(f.properties.name)} (${esc(f.properties.code.slice(-4))})</option>`).join("")}
      </select></fieldset>
    ${current.me?.role === "grid_worker" ? `<label class="check"><input type="checkbox" id="on-spot" ${d.on_spot ? "checked" : ""}>${esc(t("on_spot"))}</label>` : ""}
    <p class="err" id="form-error"></p>`;
}

export function thumbs(d) {
  const list = d.photos.map((p, k) => `<div class="thumb"><img alt="" src="${esc(photoUrl(p.sha256, p.blob))}">
    <button type="button" data-action="rm-photo" data-k="${k}" aria-label="${esc(t("delete"))}">✕</button></div>`).join("");
  return list + (d.busy ? `<p class="hint">${esc(t("processing"))}</p>` : "");
}

function counter() {
  const el = $("#counter");
  if (!el) return;
  const n = form.draft.description.length;
  el.textContent = `${n}/${MAX_DESCRIPTION}`;
  el.classList.toggle("over", n > MAX_DESCRIPTION);
}

/** Wires the drawn form's inputs to the draft. */
export function bindForm() {
  const ta = $("#description");
  ta?.addEventListener("input", () => { form.draft.description = ta.value; counter(); });
  $("#micro-grid")?.addEventListener("change", (e) => { form.draft.micro_grid = e.target.value; });
  $("#on-spot")?.addEventListener("change", (e) => { form.draft.on_spot = e.target.checked; });
  $("#photo-input")?.addEventListener("change", (e) => addPhotos(form.draft, [...e.target.files], "#thumbs"));
  counter();
}

/** Prepares the picked photos one by one (EXIF, resize, sha256), showing them in `target` as they come. */
export async function addPhotos(d, files, target) {
  d.busy += files.length;
  $(target).innerHTML = thumbs(d);
  for (const f of files) {
    try {
      const p = await preparePhotoAsync(f);
      if (!d.photos.some((x) => x.sha256 === p.sha256)) d.photos.push(p);
    } catch (e) { toast(String(e.message || e)); }
    d.busy -= 1;
    const el = $(target);
    if (el) el.innerHTML = thumbs(d);
  }
  updateWhere();
}

/** The "where" box: the fix and its accuracy, the micro-grid found, or why there is none. */
export async function updateWhere() {
  const el = $("#where");
  const draft = form.draft;
  if (!el || !draft) return;
  const fix = geo.fix;
  let html;
  if (fix) {
    html = `<p data-testid="gps">${fix.lat.toFixed(5)}, ${fix.lon.toFixed(5)} <strong>±${fix.accuracy_m} m</strong></p>`;
    if (fix.accuracy_m > GOOD_ACCURACY_M) html += `<p class="warn">${esc(t("poor_gps"))}</p>`;
    const f = await foundMicroGrid();
    html += f ? `<p data-testid="mg-found">${esc(t("mg_found", { name: f.properties.name }))}</p>` : `<p class="warn">${esc(t("mg_outside"))}</p>`;
  } else if (geo.error) html = `<p class="warn">${esc(t("no_gps"))}</p>`;
  else html = `<p class="hint">${esc(t("locating"))}</p>`;
  const withGps = draft.photos.find((p) => p.exif?.lat != null);
  if (!fix && withGps) html += `<button type="button" data-action="photo-gps">${esc(t("photo_gps"))}</button>`;
  el.innerHTML = html;
}
onGeo(updateWhere);

const round6 = (x) => Math.round(x * 1e6) / 1e6;

/** The report.create body of a draft (the fix, unless the draft has its own location). */
export function reportFromDraft(d) {
  const report = { id: d.caseId, category: d.category, risk_level: d.risk, description: d.description.trim(),
    captured_at: d.started, photos: d.photos.map((p) => p.sha256) };
  const loc = d.location || (geo.fix ? { lat: round6(geo.fix.lat), lon: round6(geo.fix.lon), accuracy_m: geo.fix.accuracy_m, crs: "wgs84" } : null);
  if (loc) report.location = loc;
  if (d.micro_grid) report.micro_grid_id = d.micro_grid;
  if (current.me?.role === "grid_worker" && d.on_spot) report.handled_on_spot = true;
  return report;
}

/** What is still missing before a report may be saved, in words; null when nothing is. */
export function checkDraft(d, report) {
  if (!d.category) return t("need_category");
  if (!d.risk) return t("need_risk");
  if (!report.location && !report.micro_grid_id) return t("need_where");
  if (d.busy) return t("processing");
  return null;
}

/** Keeps the draft's photos in IndexedDB (as Blobs) for the sync to upload. */
export async function storePhotos(photos) {
  for (const p of photos) {
    const old = await store.getPhoto(p.sha256);
    if (!old) await store.putPhoto({ sha256: p.sha256, blob: p.blob, size: p.size, exif: p.exif || {}, state: "waiting", progress: 0, created_at: Date.now() });
  }
}

/** The form's buttons (上报 and 修改), and a photo's ✕ wherever thumbnails are shown. */
export const formActions = {
  cat: (el) => { form.draft.category = el.dataset.code; setPressed(el); },
  risk: (el) => { form.draft.risk = el.dataset.risk; setPressed(el); },
  "rm-photo": (el) => { form.draft.photos.splice(Number(el.dataset.k), 1); el.closest(".thumbs").innerHTML = thumbs(form.draft); },
  "photo-gps": () => {
    const p = form.draft.photos.find((x) => x.exif?.lat != null);
    if (p) { geo.fix = { lat: p.exif.lat, lon: p.exif.lon, accuracy_m: 50, at: Date.now() }; updateWhere(); }
  },
};
