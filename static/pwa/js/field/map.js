// 地图: my grid's micro-grids, my cases by state (each with its word) and my position, offline (tiles only when
// a tile server is set on 我的).
import { t } from "../i18n.js";
import { loadLeaflet } from "../leaflet.js";
import { go } from "../router.js";
import { $, esc, view } from "../ui.js";
import { localCases, microGrids } from "./data.js";
import { geo, startGeo } from "./location.js";

const STATE_COLOURS = { reported: "#6a1b9a", accepted: "#0b5394", assigned: "#b71c1c", in_progress: "#e65100", resolved: "#1b5e20",
  returned: "#4e342e", closed: "#424242", rejected: "#424242", merged: "#424242" };

export async function render() {
  startGeo();
  view().innerHTML = `<h2>${esc(t("map_title"))}</h2><div id="map" role="application" aria-label="${esc(t("map_title"))}"></div>`;
  const L = await loadLeaflet();
  const el = $("#map");
  if (!el) return;
  const map = L.map(el, { zoomControl: true, attributionControl: false, zoomSnap: 0.25 });
  const tiles = localStorage.getItem("gridcase.tiles");
  if (tiles) L.tileLayer(tiles, { maxZoom: 19 }).addTo(map);
  const features = await microGrids();
  const layer = L.geoJSON({ type: "FeatureCollection", features }, {
    style: { color: "#0b5394", weight: 2, fillOpacity: 0.06 },
    onEachFeature: (f, l) => l.bindTooltip(f.properties.name.replace(/^.*?(\d+号微网格)$/, "$1"), { permanent: true, direction: "center", className: "map-label" }),
  }).addTo(map);
  if (features.length) map.fitBounds(layer.getBounds(), { padding: [10, 10] });
  else map.setView([27.8, 120.65], 13);
  const { cases } = await localCases();
  for (const c of cases) {
    const loc = c.location;
    if (!loc || loc.lat == null) continue;
    const colour = STATE_COLOURS[c.state] || "#333";
    L.circleMarker([loc.lat, loc.lon], { radius: 9, color: "#fff", weight: 2, fillColor: colour, fillOpacity: 1 })
      .bindTooltip(`${t("s_" + c.state)} · ${t(c.risk_level)}`, { permanent: true, direction: "right", offset: [10, 0], className: "map-label" })
      .on("click", () => go(`#case/${c.id}`)).addTo(map);
  }
  if (geo.fix) {
    L.circle([geo.fix.lat, geo.fix.lon], { radius: geo.fix.accuracy_m, color: "#1565c0", weight: 1, fillOpacity: 0.15 }).addTo(map);
    L.circleMarker([geo.fix.lat, geo.fix.lon], { radius: 7, color: "#fff", weight: 3, fillColor: "#1565c0", fillOpacity: 1 })
      .bindTooltip(t("my_position"), { permanent: true, direction: "top", className: "map-label" }).addTo(map);
  }
}
