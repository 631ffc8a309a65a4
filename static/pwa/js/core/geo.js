// Point-in-polygon over GeoJSON (WGS-84, [lon, lat] order) and the nearest polygon within a distance:
// finds the micro-grid of a GPS fix from the cached polygons of the user's region, offline.

function inRing(lon, lat, ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if ((yi > lat) !== (yj > lat) && lon < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function inPolygon(lon, lat, rings) {
  if (!rings.length || !inRing(lon, lat, rings[0])) return false;
  for (let k = 1; k < rings.length; k++) if (inRing(lon, lat, rings[k])) return false; // a hole
  return true;
}

function polygons(geometry) {
  if (!geometry) return [];
  if (geometry.type === "Polygon") return [geometry.coordinates];
  if (geometry.type === "MultiPolygon") return geometry.coordinates;
  return [];
}

/** Is the point (lat, lon) inside this GeoJSON geometry (Polygon or MultiPolygon, holes honoured)? */
export function contains(geometry, lat, lon) {
  return polygons(geometry).some((rings) => inPolygon(lon, lat, rings));
}

/** The first feature whose geometry holds the point, or null. */
export function locate(features, lat, lon) {
  for (const f of features || []) if (contains(f.geometry, lat, lon)) return f;
  return null;
}

const R = 6371008.8;

/** Distance in metres from a point to a segment, on a local equirectangular projection (fine at grid scale). */
function segmentDistance(lat, lon, a, b) {
  const k = Math.cos((lat * Math.PI) / 180);
  const toXY = ([x, y]) => [((x - lon) * Math.PI / 180) * R * k, ((y - lat) * Math.PI / 180) * R];
  const [ax, ay] = toXY(a);
  const [bx, by] = toXY(b);
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const t = len2 ? Math.max(0, Math.min(1, -(ax * dx + ay * dy) / len2)) : 0;
  return Math.hypot(ax + t * dx, ay + t * dy);
}

/** Distance in metres from the point to the geometry (0 inside). */
export function distanceM(geometry, lat, lon) {
  if (contains(geometry, lat, lon)) return 0;
  let best = Infinity;
  for (const rings of polygons(geometry)) for (const ring of rings)
    for (let i = 1; i < ring.length; i++) best = Math.min(best, segmentDistance(lat, lon, ring[i - 1], ring[i]));
  return best;
}

/** The feature holding the point, else the nearest one within `maxM` metres (GPS drift at a border). */
export function locateNear(features, lat, lon, maxM = 0) {
  const hit = locate(features, lat, lon);
  if (hit) return { feature: hit, distance_m: 0 };
  let best = null;
  for (const f of features || []) {
    const d = distanceM(f.geometry, lat, lon);
    if (d <= maxM && (!best || d < best.distance_m)) best = { feature: f, distance_m: d };
  }
  return best;
}

/** [[south, west], [north, east]] of a FeatureCollection's features, or null. */
export function bounds(features) {
  let s = 90, w = 180, n = -90, e = -180, any = false;
  for (const f of features || []) for (const rings of polygons(f.geometry)) for (const [x, y] of rings[0] || []) {
    any = true; s = Math.min(s, y); n = Math.max(n, y); w = Math.min(w, x); e = Math.max(e, x);
  }
  return any ? [[s, w], [n, e]] : null;
}
