import { test } from "node:test";
import assert from "node:assert/strict";
import { bounds, contains, distanceM, locate, locateNear } from "../../static/pwa/js/core/geo.js";

const square = (w, s, e, n) => ({ type: "Polygon", coordinates: [[[w, s], [e, s], [e, n], [w, n], [w, s]]] });
const feature = (code, geometry) => ({ type: "Feature", properties: { code }, geometry });

test("inside, outside, on a hole", () => {
  const g = square(120, 27, 121, 28);
  assert.ok(contains(g, 27.5, 120.5));
  assert.ok(!contains(g, 28.5, 120.5));
  const holed = { type: "Polygon", coordinates: [g.coordinates[0], [[120.4, 27.4], [120.6, 27.4], [120.6, 27.6], [120.4, 27.6], [120.4, 27.4]]] };
  assert.ok(!contains(holed, 27.5, 120.5));
  assert.ok(contains(holed, 27.2, 120.2));
  const multi = { type: "MultiPolygon", coordinates: [square(0, 0, 1, 1).coordinates, g.coordinates] };
  assert.ok(contains(multi, 27.5, 120.5) && contains(multi, 0.5, 0.5) && !contains(multi, 5, 5));
});

test("locate picks the cell; locateNear tolerates GPS drift at the border", () => {
  const fs = [feature("A", square(120, 27, 120.01, 27.01)), feature("B", square(120.01, 27, 120.02, 27.01))];
  assert.equal(locate(fs, 27.005, 120.015).properties.code, "B");
  assert.equal(locate(fs, 27.02, 120.015), null);
  // ~11 m north of B's top edge
  const near = locateNear(fs, 27.0101, 120.015, 30);
  assert.equal(near.feature.properties.code, "B");
  assert.ok(near.distance_m > 5 && near.distance_m < 20, String(near.distance_m));
  assert.equal(locateNear(fs, 27.0101, 120.015, 5), null);
  assert.equal(distanceM(fs[0].geometry, 27.005, 120.005), 0);
  assert.deepEqual(bounds(fs), [[27, 120], [27.01, 120.02]]);
});
