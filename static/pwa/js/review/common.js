// What the console's views share: words for values, dates and problems, the reference data (categories,
// workflow, my regions two levels down), and photos and files fetched with the bearer token.
// The console reads the live API (it says so when there is no network); the field views stay offline-first.
import * as store from "../db.js";
import { api, apiJson, HttpError, lang, Offline } from "../api.js";
import { t } from "../i18n.js";
import { ago } from "../core/time.js";
import { current } from "../router.js";
import { esc, view } from "../ui.js";

export const OPEN_STATES = ["reported", "accepted", "assigned", "in_progress", "returned", "resolved"];
export const STATES = [...OPEN_STATES, "closed", "rejected", "merged"];
export const FLAGS = ["possible_duplicate", "outside_micro_grid", "micro_grid_from_location", "clock_skew", "exif_mismatch", "photo_reused"];
export const CHILD_LEVEL = { city: "township", township: "village", village: "grid", grid: "micro_grid" };

export const when = (iso) => (iso ? new Date(iso).toLocaleString(lang() === "en" ? "en" : "zh-CN", { hour12: false }) : "—");
export const agoText = (iso) => (iso ? (lang() === "en" ? `${ago(Date.now() - Date.parse(iso), "en")} ago` : `${ago(Date.now() - Date.parse(iso))}前`) : t("never"));
export const short = (id) => String(id || "").slice(0, 8);

/** A failed request in words: offline, or the server's problem (detail, code, field errors). */
export function problemText(e) {
  if (e instanceof Offline || !navigator.onLine) return t("console_offline");
  if (e instanceof HttpError) {
    const errs = e.problem.errors ? Object.entries(e.problem.errors).map(([f, m]) => `${f}: ${[].concat(m).map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join("; ")}`).join(" · ") : "";
    return `${e.problem.detail || e.message}${e.problem.code ? ` (${e.problem.code})` : ""}${errs ? ` — ${errs}` : ""}`;
  }
  return String(e?.message || e);
}
export function failed(e) { view().insertAdjacentHTML("beforeend", `<p class="err" role="alert">${esc(t("load_failed"))}: ${esc(problemText(e))}</p>`); }

export async function categoryMap() {
  let cats = await store.getCached("categories");
  if (!cats) { cats = await apiJson("/api/v1/categories"); await store.setCached("categories", cats); }
  return new Map(cats.map((c) => [c.code, lang() === "en" ? c.name_en : c.name_zh]));
}
export async function workflow() {
  let w = await store.getCached("workflow");
  if (!w) { w = await apiJson("/api/v1/workflow"); await store.setCached("workflow", w); }
  return w;
}

let regions = null; // [{code, name, level, depth}] of my region and two levels below
/** My region and two levels below it (for the filters and names), fetched once per user. */
export async function loadRegions() {
  const me = current.me;
  if (regions && regions.root === me.region) return regions;
  const list = [{ code: me.region, name: me.region_name || me.region, level: me.region_level, depth: 0 }];
  try {
    const kids = await apiJson(`/api/v1/regions/${encodeURIComponent(me.region)}/children`);
    const grand = await Promise.all(kids.map((k) => apiJson(`/api/v1/regions/${encodeURIComponent(k.code)}/children`).catch(() => [])));
    kids.forEach((k, i) => {
      list.push({ code: k.code, name: k.name, level: k.level, depth: 1 });
      for (const g of grand[i]) list.push({ code: g.code, name: g.name, level: g.level, depth: 2 });
    });
  } catch (e) { console.warn(e); }
  regions = Object.assign(list, { root: me.region });
  return regions;
}
export const regionName = (code) => regions?.find((r) => r.code === code)?.name || code || "—";

/** A field's value in words (states, colours, levels, categories, places, times). */
export function fmtVal(field, v, cats) {
  if (v == null || v === "") return "—";
  if (field === "state") return t("s_" + v);
  if (field === "risk_level") return t(v);
  if (field === "level") return t("level_" + v);
  if (field === "category") return cats?.get(v) || v;
  if (field === "location" && typeof v === "object") return `${v.lat}, ${v.lon}${v.accuracy_m != null ? ` ±${v.accuracy_m} m` : ""}`;
  if (field.endsWith("_at") && typeof v === "string") return when(v);
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}
export const fieldName = (f) => (t("fld_" + f) === "fld_" + f ? f : t("fld_" + f));

const urls = new Map(); // "sha:variant" → object URL
/** A photo as an object URL (the media API needs the bearer token, so an <img src> cannot fetch it). */
export async function blobUrl(sha, variant) {
  const key = `${sha}:${variant}`;
  if (!urls.has(key)) {
    const res = await api(`/api/v1/media/${sha}?variant=${variant}`);
    urls.set(key, URL.createObjectURL(await res.blob()));
  }
  return urls.get(key);
}

/** Downloads an API answer as a file named `name`. */
export async function download(path, name) {
  const res = await api(path);
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url; a.download = name; document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
