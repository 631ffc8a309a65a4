// The phone's position while capturing or looking at the map: one GPS watch, the better fix kept, and the
// micro-grid it falls in (from the polygons held offline).
import { locateNear } from "../core/geo.js";
import { microGrids } from "./data.js";

export const GOOD_ACCURACY_M = 50;

/** fix: { lat, lon, accuracy_m, at } or null; error: the last GPS error's text. */
export const geo = { fix: null, error: null, watch: null };
const listeners = new Set();
/** fn() is called on every new fix or error. */
export function onGeo(fn) { listeners.add(fn); }
const changed = () => { for (const fn of listeners) fn(); };

export function startGeo() {
  if (geo.watch !== null || !navigator.geolocation) return;
  geo.watch = navigator.geolocation.watchPosition((p) => {
    const fix = { lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: Math.round(p.coords.accuracy || 0), at: Date.now() };
    // keep the better fix unless the old one is stale
    if (!geo.fix || fix.accuracy_m <= geo.fix.accuracy_m || Date.now() - geo.fix.at > 60_000) geo.fix = fix;
    geo.error = null;
    changed();
  }, (e) => { geo.error = e.message || String(e.code); changed(); },
  { enableHighAccuracy: true, maximumAge: 10_000, timeout: 30_000 });
}

export function stopGeo() {
  if (geo.watch !== null) navigator.geolocation.clearWatch(geo.watch);
  geo.watch = null;
}

/** The micro-grid feature the fix is in (or within its accuracy, at most 50 m of), or null. */
export async function foundMicroGrid() {
  if (!geo.fix) return null;
  const near = locateNear(await microGrids(), geo.fix.lat, geo.fix.lon, Math.min(geo.fix.accuracy_m, GOOD_ACCURACY_M));
  return near?.feature || null;
}
