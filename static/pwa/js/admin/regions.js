// 区域 (#admin-regions): a GeoJSON import previewed on the map (what would be created, renamed, moved,
// reshaped; old boundaries dashed) before it is applied.
import { t } from "../i18n.js";
import { loadLeaflet } from "../leaflet.js";
import { $, esc, toast, view } from "../ui.js";
import { problemText } from "../review/common.js";
import { header, send } from "./nav.js";

const COLOURS = { created: "#1b5e20", renamed: "#0b5394", moved: "#e65100", reshaped: "#6a1b9a", unchanged: "#757575" };
let doc = null;

export async function render() {
  doc = null;
  view().innerHTML = `${await header("admin-regions")}<h2>${esc(t("tab_admin-regions"))}</h2>
    <div class="card"><input type="file" id="geo-file" accept=".geojson,.json,application/geo+json,application/json">
      <div class="row"><button type="button" data-action="preview">${esc(t("preview"))}</button>
      <button type="button" data-action="apply" disabled>${esc(t("apply"))}</button></div></div>
    <div id="geo-plan"></div><div id="map" role="application" aria-label="${esc(t("preview"))}"></div>`;
}

function drawPlan(plan) {
  const kinds = ["created", "renamed", "moved", "reshaped"];
  $("#geo-plan").innerHTML = `<div class="card" data-testid="geo-plan">${kinds.map((k) => `<div><span class="chip" style="border-color:${COLOURS[k]}">${esc(t("plan_" + k))} ${plan[k].length}</span>
    ${plan[k].map((r) => `<span data-plan="${k}">${esc(r.name)}${r.old_name ? ` ← ${esc(r.old_name)}` : ""}</span>`).join("、")}</div>`).join("")}
    <div>${esc(t("plan_unchanged"))} ${plan.unchanged}</div></div>`;
}

async function drawMap(plan) {
  const L = await loadLeaflet();
  const el = $("#map");
  if (el._map) el._map.remove();
  const map = L.map(el, { attributionControl: false, zoomSnap: 0.25 });
  el._map = map;
  const kind = new Map();
  for (const k of ["created", "renamed", "moved", "reshaped"]) for (const r of plan[k]) if (!kind.has(r.code)) kind.set(r.code, k);
  L.geoJSON(plan.before, { style: { color: "#424242", weight: 1, dashArray: "4 4", fillOpacity: 0 } }).addTo(map);
  const layer = L.geoJSON(plan.features, {
    style: (f) => ({ color: COLOURS[kind.get(f.properties.code) || "unchanged"], weight: 2, fillOpacity: 0.08 }),
    onEachFeature: (f, l) => l.bindTooltip(`${f.properties.name} · ${t("plan_" + (kind.get(f.properties.code) || "unchanged"))}`),
  }).addTo(map);
  const bounds = layer.getBounds();
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [10, 10] });
  else map.setView([27.8, 120.65], 12);
}

async function run(dryRun) {
  try {
    const plan = await send(`/api/v1/admin/regions/import?dry_run=${dryRun}`, "POST", { geojson: doc });
    drawPlan(plan);
    await drawMap(plan);
    $('[data-action="apply"]').disabled = !dryRun;
    if (!dryRun) toast(t("applied"));
  } catch (e) { $("#geo-plan").innerHTML = `<p class="err" role="alert">${esc(problemText(e))}</p>`; }
}

export const actions = {
  async preview() {
    const file = $("#geo-file").files[0];
    if (!file) return toast(t("choose_file"));
    try { doc = JSON.parse(await file.text()); } catch { return toast(t("not_geojson")); }
    await run(true);
  },
  apply: () => doc && run(false),
};
