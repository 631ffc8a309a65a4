// What the field views read from IndexedDB: categories, micro-grids, and my cases with the reports the server
// has not sent back yet.
import * as store from "../db.js";
import { lang } from "../api.js";
import { current } from "../router.js";

export const OPEN = new Set(["reported", "accepted", "assigned", "in_progress", "returned", "resolved"]);

/** The categories my role may report. */
export async function categories() {
  const all = (await store.getCached("categories")) || [];
  return all.filter((c) => !current.me || !c.roles || c.roles.includes(current.me.role));
}
export async function categoryName(code) {
  const c = ((await store.getCached("categories")) || []).find((x) => x.code === code);
  return c ? (lang() === "en" ? c.name_en : c.name_zh) : code;
}
export async function microGrids() { return (await store.getCached("geojson"))?.data?.features || []; }

/** The pulled cases plus my reports still in the outbox, and the outbox items. */
export async function localCases() {
  const me = current.me;
  const cases = await store.allCases();
  const known = new Set(cases.map((c) => c.id));
  const items = await store.allItems();
  // my reports the server has not sent back yet
  const local = items.filter((i) => i.type === "report.create" && !known.has(i.body.report.id)).map((i) => ({
    id: i.body.report.id, local: true, item_state: i.state, state: "reported", category: i.body.report.category,
    risk_level: i.body.report.risk_level, description: i.body.report.description, reporter: me?.username,
    reported_at: new Date(i.created_at).toISOString(), micro_grid_id: i.body.report.micro_grid_id, location: i.body.report.location,
    photos: (i.body.report.photos || []).map((s) => ({ sha256: typeof s === "string" ? s : s.sha256, role: "evidence" })), version: 0 }));
  return { cases: [...cases, ...local], items };
}

const AFTER = { start: "in_progress", resolve: "resolved", resubmit: "reported" };

/** A case's state once the transitions still in the outbox are applied. */
export function effectiveState(c, pending) {
  let s = c.state;
  for (const i of pending) if (i.type === "case.transition" && AFTER[i.body.action]) s = AFTER[i.body.action];
  return s;
}

/** The case as it will be once the outbox is sent: its state and the fields of unsent edits. */
export function effectiveCase(c, pending) {
  const out = { ...c, state: effectiveState(c, pending) };
  for (const i of pending) if (i.type === "case.update") Object.assign(out, i.body.changes);
  return out;
}
