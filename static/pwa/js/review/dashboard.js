// 统计 (#dash): the figures of GET /api/v1/stats for a region and period, bars of the close-out rate by child
// region and of open / overdue cases by colour, the last 8 weeks as a line chart and a table, and a map of
// the open cases, each marker labelled with its light's word.
import { apiJson } from "../api.js";
import { t } from "../i18n.js";
import { barChart, lastWeeks, lineChart, pct } from "../core/charts.js";
import { loadLeaflet } from "../leaflet.js";
import { current, go } from "../router.js";
import { $, esc, opt, view } from "../ui.js";
import { CHILD_LEVEL, failed, loadRegions, OPEN_STATES, problemText, when } from "./common.js";

let dash = JSON.parse(sessionStorage.getItem("gridcase.dash") || "null") || {};
let dashMap = null;

/** Charts are drawn at their box's own width, so their text stays at its CSS size on a phone and a desktop. */
const chartWidth = (el) => Math.max(300, Math.min(1000, Math.round(el?.clientWidth || 640)));

export async function render() {
  const regions = await loadRegions();
  const region = dash.region || current.me.region;
  view().innerHTML = `<h2>${esc(t("dash_title"))}</h2>
    <form id="dash-form" class="card"><div class="fgrid">
      <label>${esc(t("f_region"))}<select name="region">${regions.map((r) => opt(r.code, `${"　".repeat(r.depth)}${r.name}`, region)).join("")}</select></label>
      <label>${esc(t("period_from"))}<input type="date" name="from" value="${esc(dash.from || "")}"></label>
      <label>${esc(t("period_to"))}<input type="date" name="to" value="${esc(dash.to || "")}"></label>
    </div><div class="row" style="margin-top:10px"><button type="submit" class="primary inline">${esc(t("apply"))}</button></div></form>
    <div id="dash-figs" class="figs"><p class="loading">…</p></div>
    <div class="cols">
      <section class="card"><h3 id="chart-region-title"></h3><div id="chart-region"></div></section>
      <section class="card"><h3>${esc(t("chart_colour"))}</h3><div id="chart-colour"></div></section>
    </div>
    <section class="card"><h3>${esc(t("chart_trend"))}</h3><div id="chart-trend"><p class="loading">…</p></div></section>
    <section class="card"><h3>${esc(t("map_open"))}</h3><div id="dash-map" role="application" aria-label="${esc(t("map_open"))}"></div><div id="map-legend" class="legend"></div></section>`;
  $("#dash-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const d = new FormData(e.target);
    dash = { region: d.get("region"), from: d.get("from"), to: d.get("to") };
    sessionStorage.setItem("gridcase.dash", JSON.stringify(dash));
    render();
  });
  const p = new URLSearchParams({ region });
  if (dash.from) p.set("from", dash.from);
  if (dash.to) p.set("to", dash.to);
  let s;
  try { s = await apiJson(`/api/v1/stats?${p}`); } catch (e) { $("#dash-figs").innerHTML = ""; return failed(e); }
  const figs = [
    ["close_out_rate", pct(s.close_out_rate), `${s.closed}/${s.accepted}`], ["on_time_rate", pct(s.on_time_rate), `${s.stages_ended}`],
    ["grid_resolution_rate", pct(s.grid_resolution_rate), `${s.closed_in_period}`],
    ["median_hours", s.median_hours_to_close == null ? "—" : t("hours", { n: s.median_hours_to_close })],
    ["p90_hours", s.p90_hours_to_close == null ? "—" : t("hours", { n: s.p90_hours_to_close })],
    ["overdue_now", String(s.overdue)], ["total_cases", String(s.total)], ["devices_unsent", String(s.devices_with_unsent)],
  ];
  $("#dash-figs").innerHTML = `<p class="meta figs-period">${esc(s.region.name)} · ${esc(when(s.from))} – ${esc(when(s.to))}</p>` + figs.map(([k, v, sub]) => `<div class="fig" data-fig="${k}"><div class="fig-v">${esc(v)}</div><div class="fig-k">${esc(t(k))}${sub ? ` <span class="meta">(${esc(sub)})</span>` : ""}</div></div>`).join("");
  const lvl = CHILD_LEVEL[s.region.level];
  $("#chart-region-title").textContent = t("chart_region", { lvl: lvl ? t("level_" + lvl) : "" });
  $("#chart-region").innerHTML = s.by_region.length ? barChart({ title: $("#chart-region-title").textContent, max: 1, width: chartWidth($("#chart-region")), labelWidth: 110,
    rows: s.by_region.map((r) => ({ label: r.name, value: r.close_out_rate, text: `${pct(r.close_out_rate)} (${r.closed}/${r.accepted})`, cls: "rate" })) })
    : `<p class="hint">${esc(t("empty"))}</p>`;
  trend(region);
  // open cases in the region, once: the map and the overdue-by-colour bars
  let features = [];
  try {
    const gp = new URLSearchParams({ format: "geojson", state: OPEN_STATES.join(","), region: region });
    features = (await apiJson(`/api/v1/cases/export?${gp}`)).features || [];
  } catch (e) { console.warn(e); }
  const overdue = { red: 0, yellow: 0, blue: 0 };
  for (const f of features) if (f.properties.overdue && f.properties.risk_level in overdue) overdue[f.properties.risk_level] += 1;
  $("#chart-colour").innerHTML = barChart({ title: t("chart_colour"), labelWidth: 110, width: chartWidth($("#chart-colour")), rows: ["red", "yellow", "blue"].flatMap((r) => [
    { label: `${t(r)} · ${t("open_n")}`, value: s.open_by_risk?.[r] ?? 0, cls: `risk-${r}` },
    { label: `${t(r)} · ${t("overdue_n")}`, value: overdue[r], cls: `risk-${r}`, hatch: true }]) });
  drawMap(features, region, s.region.level);
}

async function trend(region) {
  const weeks = lastWeeks(8);
  const el = $("#chart-trend");
  try {
    const all = await Promise.all(weeks.map((w) => apiJson(`/api/v1/stats?${new URLSearchParams({ region, from: w.from, to: w.to })}`)));
    if (!el.isConnected) return;
    el.innerHTML = lineChart({ title: t("chart_trend"), width: chartWidth(el), labels: weeks.map((w) => w.label), series: [
      { name: t("close_out_rate"), values: all.map((s) => s.close_out_rate), cls: "s1" },
      { name: t("on_time_rate"), values: all.map((s) => s.on_time_rate), cls: "s2", dash: "6 4" }] })
      + `<table class="mini"><thead><tr><th>${esc(t("period_from"))}</th>${weeks.map((w) => `<th>${esc(w.label)}</th>`).join("")}</tr></thead><tbody>
        <tr><th>${esc(t("total_cases"))}</th>${all.map((s) => `<td>${s.total}</td>`).join("")}</tr>
        <tr><th>${esc(t("s_closed"))}</th>${all.map((s) => `<td>${s.closed_in_period}</td>`).join("")}</tr>
        <tr><th>${esc(t("close_out_rate"))}</th>${all.map((s) => `<td>${pct(s.close_out_rate)}</td>`).join("")}</tr></tbody></table>`;
  } catch (e) { el.innerHTML = `<p class="err">${esc(problemText(e))}</p>`; }
}

async function drawMap(features, region, level) {
  const el = $("#dash-map");
  if (!el) return;
  const L = await loadLeaflet();
  if (!el.isConnected) return;
  try { dashMap?.remove(); } catch { /* gone with its element */ }
  const map = L.map(el, { attributionControl: false, zoomSnap: 0.25 });
  dashMap = map;
  const tiles = localStorage.getItem("gridcase.tiles");
  if (tiles) L.tileLayer(tiles, { maxZoom: 19 }).addTo(map);
  let bounds = null;
  try {
    const child = CHILD_LEVEL[level];
    const gj = await apiJson(`/api/v1/regions/${encodeURIComponent(region)}/geojson${child ? `?level=${child}` : ""}`);
    const layer = L.geoJSON(gj, { style: { color: "#0b5394", weight: 2, fillOpacity: 0.04 },
      onEachFeature: (f, l) => l.bindTooltip(f.properties.name, { permanent: features.length < 1 || gj.features.length <= 16, direction: "center", className: "map-label" }) }).addTo(map);
    if (gj.features.length) bounds = layer.getBounds();
  } catch (e) { console.warn(e); }
  const count = { green: 0, yellow: 0, red: 0, none: 0 };
  let located = 0;
  for (const f of features) {
    const light = f.properties.light || "none";
    count[light] = (count[light] || 0) + 1;
    if (!f.geometry) continue;
    located += 1;
    const [lon, lat] = f.geometry.coordinates;
    const word = light === "none" ? "—" : t("light_" + light);
    const icon = L.divIcon({ className: "", html: `<span class="mk mk-${light}">${esc(word)}</span>`, iconSize: null });
    L.marker([lat, lon], { icon, title: `${f.properties.number} ${word}`, keyboard: true })
      .bindTooltip(`${f.properties.number} · ${f.properties.category_zh} · ${t(f.properties.risk_level)} · ${t("s_" + f.properties.state)}`)
      .on("click", () => go(`#review/${f.id}`)).addTo(map);
    bounds = bounds ? bounds.extend([lat, lon]) : L.latLngBounds([[lat, lon], [lat, lon]]);
  }
  if (bounds) map.fitBounds(bounds, { padding: [16, 16] }); else map.setView([27.8, 120.65], 12);
  $("#map-legend").innerHTML = `<strong>${esc(t("legend"))}</strong> ${["green", "yellow", "red"].map((l) => `<span class="mk mk-${l}">${esc(t("light_" + l))}</span> ${count[l]}`).join(" ")}
    ${features.length - located ? ` · ${esc(t("no_location", { n: features.length - located }))}` : ""}`;
}
