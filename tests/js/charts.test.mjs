// The dashboard's SVG charts: values written beside bars and points (never colour alone), gaps for missing
// rates, text escaped, and the weeks of the trend.
import { test } from "node:test";
import assert from "node:assert/strict";
import { barChart, lastWeeks, lineChart, pct, runs } from "../../static/pwa/js/core/charts.js";

test("pct writes rates as percentages and none as a dash", () => {
  assert.equal(pct(0.5), "50%");
  assert.equal(pct(0.1234), "12.3%");
  assert.equal(pct(null), "—");
  assert.equal(pct(1), "100%");
});

test("bars carry their label and value as text, scaled to the largest", () => {
  const svg = barChart({ title: "t", width: 400, labelWidth: 100, rows: [
    { label: "红 · 未结", value: 4, cls: "risk-red" }, { label: "<b>", value: 2 }, { label: "无", value: null }] });
  assert.match(svg, /^<svg class="chart" viewBox="0 0 400 98" role="img" aria-label="t">/);
  assert.ok(svg.includes(">红 · 未结</text>") && svg.includes(">4</text>") && svg.includes(">—</text>"));
  assert.ok(svg.includes("&lt;b&gt;") && !svg.includes("<b>"));
  const widths = [...svg.matchAll(/<rect x="100" y="\d+" width="(\d+)"/g)].map((m) => Number(m[1]));
  assert.deepEqual(widths, [222, 111, 0]); // 400 − 100 − 70 − 8 = 222 px for the largest
  assert.ok(barChart({ rows: [{ label: "a", value: 1, hatch: true }] }).includes('<pattern id="hatch"'));
});

test("a rate of zero draws no bar but says 0%", () => {
  const svg = barChart({ max: 1, rows: [{ label: "a", value: 0, text: pct(0) }] });
  assert.ok(svg.includes('width="0"') && svg.includes(">0%</text>"));
});

test("lines break at missing values and label every point", () => {
  assert.deepEqual(runs([0.1, null, 0.3, 0.4]), [[[0, 0.1]], [[2, 0.3], [3, 0.4]]]);
  const svg = lineChart({ labels: ["a", "b", "c", "d"], series: [{ name: "销号率", values: [0.1, null, 0.3, 0.4], cls: "s1" }] });
  assert.equal((svg.match(/<polyline/g) || []).length, 1);
  assert.equal((svg.match(/<circle/g) || []).length, 3);
  for (const v of ["10%", "30%", "40%", "销号率"]) assert.ok(svg.includes(`>${v}</text>`), v);
});

test("the last weeks run Monday to Monday in China time, ending with this one", () => {
  const weeks = lastWeeks(8, new Date("2026-11-25T20:00:00Z")); // Thursday 04:00 in Beijing
  assert.equal(weeks.length, 8);
  assert.deepEqual(weeks.at(-1), { from: "2026-11-23", to: "2026-11-30", label: "11-23" });
  assert.equal(weeks[0].from, "2026-10-05");
  for (let k = 1; k < 8; k++) assert.equal(weeks[k].from, weeks[k - 1].to);
});
