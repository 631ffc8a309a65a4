// Small SVG charts for the reviewer's dashboard, drawn as strings (no library, no DOM): horizontal bars
// with their values written beside them, and a line chart with labelled points. Colours are CSS classes
// (app.css), and every bar and point also carries its value and its word, never colour alone.
import { esc } from "../ui.js";

/** A percentage for a rate in [0, 1]; "—" for none. */
export function pct(v) { return v == null || !Number.isFinite(v) ? "—" : `${Math.round(v * 1000) / 10}%`; }

/**
 * Horizontal bars. rows: [{label, value, text?, cls?, hatch?}]; value null draws no bar and writes "—".
 * max: the scale's top (default the largest value). Returns an <svg> string scaled to its container.
 */
export function barChart({ rows, title = "", max = null, width = 640, labelWidth = 150, rowHeight = 30 }) {
  const top = max ?? Math.max(1, ...rows.map((r) => (Number.isFinite(r.value) ? r.value : 0)));
  const valueWidth = 70;
  const barSpace = width - labelWidth - valueWidth - 8;
  const height = rows.length * rowHeight + 8;
  const bars = rows.map((r, k) => {
    const y = 4 + k * rowHeight;
    const ok = Number.isFinite(r.value);
    const w = ok && top > 0 ? Math.max(ok && r.value > 0 ? 2 : 0, Math.round((r.value / top) * barSpace)) : 0;
    const text = r.text ?? (ok ? String(r.value) : "—");
    const fill = r.hatch ? ` fill="url(#hatch)"` : "";
    return `<g class="bar ${esc(r.cls || "")}"><text x="${labelWidth - 6}" y="${y + rowHeight / 2 + 5}" text-anchor="end" class="lbl">${esc(r.label)}</text>`
      + `<rect x="${labelWidth}" y="${y + 4}" width="${w}" height="${rowHeight - 10}" rx="3"${fill}></rect>`
      + `<text x="${labelWidth + w + 6}" y="${y + rowHeight / 2 + 5}" class="val">${esc(text)}</text></g>`;
  }).join("");
  const defs = rows.some((r) => r.hatch)
    ? `<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" class="hatch-bg"></rect><line x1="0" y1="0" x2="0" y2="6" class="hatch-line"></line></pattern></defs>` : "";
  return `<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(title)}"><title>${esc(title)}</title>${defs}${bars}</svg>`;
}

/** Split a series into runs of consecutive non-null points (a null is a gap in the line). */
export function runs(values) {
  const out = [];
  let cur = [];
  values.forEach((v, i) => {
    if (v == null || !Number.isFinite(v)) { if (cur.length) out.push(cur); cur = []; } else cur.push([i, v]);
  });
  if (cur.length) out.push(cur);
  return out;
}

/**
 * A line chart over labelled x steps. series: [{name, values, cls, dash?}]; values in [0, max], null = gap.
 * format: how a value is written at its point. The legend names each series next to a sample of its line.
 */
export function lineChart({ labels, series, title = "", max = 1, format = pct, width = 640, height = 260 }) {
  const left = 44, right = 16, topPad = 34, bottom = 30;
  const w = width - left - right, h = height - topPad - bottom;
  const x = (i) => left + (labels.length > 1 ? (i * w) / (labels.length - 1) : w / 2);
  const y = (v) => topPad + h - (Math.min(v, max) / max) * h;
  const grid = [0, 0.5, 1].map((f) => `<line x1="${left}" x2="${left + w}" y1="${y(f * max)}" y2="${y(f * max)}" class="grid"></line>`
    + `<text x="${left - 6}" y="${y(f * max) + 4}" text-anchor="end" class="axis">${esc(format(f * max))}</text>`).join("");
  const xs = labels.map((l, i) => `<text x="${x(i)}" y="${height - 8}" text-anchor="middle" class="axis">${esc(l)}</text>`).join("");
  const lines = series.map((s, k) => {
    const dash = s.dash ? ` stroke-dasharray="${esc(s.dash)}"` : "";
    const paths = runs(s.values).map((run) => run.length > 1
      ? `<polyline points="${run.map(([i, v]) => `${x(i)},${y(v)}`).join(" ")}"${dash}></polyline>` : "").join("");
    const dots = runs(s.values).flat().map(([i, v]) => `<circle cx="${x(i)}" cy="${y(v)}" r="4"></circle>`
      + `<text x="${x(i)}" y="${y(v) + (k % 2 ? 16 : -8)}" text-anchor="middle" class="val">${esc(format(v))}</text>`).join("");
    return `<g class="line ${esc(s.cls || "")}">${paths}${dots}</g>`;
  }).join("");
  const legend = series.map((s, k) => {
    const lx = left + k * 170;
    const dash = s.dash ? ` stroke-dasharray="${esc(s.dash)}"` : "";
    return `<g class="line ${esc(s.cls || "")}"><line x1="${lx}" x2="${lx + 28}" y1="12" y2="12"${dash}></line><text x="${lx + 34}" y="16" class="lbl">${esc(s.name)}</text></g>`;
  }).join("");
  return `<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(title)}"><title>${esc(title)}</title>${grid}${xs}${lines}${legend}</svg>`;
}

/** The Monday-based weeks ending with the current one: [{from, to, label}] as YYYY-MM-DD (China time). */
export function lastWeeks(n, now = new Date()) {
  const day = (d) => new Date(d.getTime() + 8 * 3600 * 1000).toISOString().slice(0, 10); // CST date
  const today = new Date(`${day(now)}T00:00:00Z`);
  const monday = new Date(today.getTime() - ((today.getUTCDay() + 6) % 7) * 86400000);
  const out = [];
  for (let k = n - 1; k >= 0; k--) {
    const from = new Date(monday.getTime() - k * 7 * 86400000);
    const to = new Date(from.getTime() + 7 * 86400000);
    out.push({ from: from.toISOString().slice(0, 10), to: to.toISOString().slice(0, 10), label: from.toISOString().slice(5, 10) });
  }
  return out;
}
