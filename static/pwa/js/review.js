// The reviewer console (审核台) for reviewers and admins, in the same app: the review queue with its filters,
// sort, cursor pages and bulk accept / return; the case page (photos by role, timeline, conflicts side by
// side, the transitions the workflow table allows); open conflicts; devices holding unsent work; figures,
// charts and a map. It works online only (it reads the live queue); the field views stay offline-first.
import * as store from "./db.js";
import { api, apiJson, HttpError, lang, Offline, session } from "./api.js";
import { t } from "./i18n.js";
import { ago, isoWithOffset } from "./core/time.js";
import { barChart, lastWeeks, lineChart, pct } from "./core/charts.js";

const $ = (sel, el = document) => el.querySelector(sel);
const view = () => $("#view");
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
export const OPEN_STATES = ["reported", "accepted", "assigned", "in_progress", "returned", "resolved"];
const STATES = [...OPEN_STATES, "closed", "rejected", "merged"];
const FLAGS = ["possible_duplicate", "outside_micro_grid", "micro_grid_from_location", "clock_skew", "exif_mismatch", "photo_reused"];
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const CHILD_LEVEL = { city: "township", township: "village", village: "grid", grid: "micro_grid" };

let ctx = { toast: () => {}, go: () => {}, render: () => {}, loadLeaflet: null };
let me = null;
let regions = null; // [{code, name, level, depth}] of my region and two levels below
const urls = new Map(); // "sha:variant" → object URL

/** main.js hands over its helpers (no circular import). */
export function setContext(c) { ctx = { ...ctx, ...c }; }
export function isReviewer(user) { return user?.role === "reviewer" || user?.role === "admin"; }

// ------------------------------------------------------------------------------------------ helpers

const when = (iso) => (iso ? new Date(iso).toLocaleString(lang() === "en" ? "en" : "zh-CN", { hour12: false }) : "—");
const agoText = (iso) => (iso ? (lang() === "en" ? `${ago(Date.now() - Date.parse(iso), "en")} ago` : `${ago(Date.now() - Date.parse(iso))}前`) : t("never"));
const short = (id) => String(id || "").slice(0, 8);

function problemText(e) {
  if (e instanceof Offline || !navigator.onLine) return t("console_offline");
  if (e instanceof HttpError) {
    const errs = e.problem.errors ? Object.entries(e.problem.errors).map(([f, m]) => `${f}: ${[].concat(m).map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join("; ")}`).join(" · ") : "";
    return `${e.problem.detail || e.message}${e.problem.code ? ` (${e.problem.code})` : ""}${errs ? ` — ${errs}` : ""}`;
  }
  return String(e?.message || e);
}
function failed(e) { view().insertAdjacentHTML("beforeend", `<p class="err" role="alert">${esc(t("load_failed"))}: ${esc(problemText(e))}</p>`); }

async function categoryMap() {
  let cats = await store.getCached("categories");
  if (!cats) { cats = await apiJson("/api/v1/categories"); await store.setCached("categories", cats); }
  return new Map(cats.map((c) => [c.code, lang() === "en" ? c.name_en : c.name_zh]));
}
async function workflow() {
  let w = await store.getCached("workflow");
  if (!w) { w = await apiJson("/api/v1/workflow"); await store.setCached("workflow", w); }
  return w;
}
async function loadRegions() {
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
const regionName = (code) => regions?.find((r) => r.code === code)?.name || code || "—";

export const riskChip = (r) => (r ? `<span class="chip ${esc(r)}">${esc(t(r))}</span>` : "");
const stateChip = (s) => `<span class="chip st">${esc(t("s_" + s))}</span>`;
export function lightChip(l) {
  return l ? `<span class="chip light-${esc(l)}" data-light="${esc(l)}"><span class="dot" aria-hidden="true"></span>${esc(t("light_" + l))}</span>` : "";
}
const flagChips = (flags) => (flags || []).map((f) => `<span class="chip flag">${esc(t("flag_" + f) === "flag_" + f ? f : t("flag_" + f))}</span>`).join(" ");
/** Charts are drawn at their box's own width, so their text stays at its CSS size on a phone and a desktop. */
const chartWidth = (el) => Math.max(300, Math.min(1000, Math.round(el?.clientWidth || 640)));
const opt = (value, label, cur) => `<option value="${esc(value)}"${String(cur ?? "") === String(value) ? " selected" : ""}>${esc(label)}</option>`;

async function blobUrl(sha, variant) {
  const key = `${sha}:${variant}`;
  if (!urls.has(key)) {
    const res = await api(`/api/v1/media/${sha}?variant=${variant}`);
    urls.set(key, URL.createObjectURL(await res.blob()));
  }
  return urls.get(key);
}

async function download(path, name) {
  const res = await api(path);
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url; a.download = name; document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function fmtVal(field, v, cats) {
  if (v == null || v === "") return "—";
  if (field === "state") return t("s_" + v);
  if (field === "risk_level") return t(v);
  if (field === "level") return t("level_" + v);
  if (field === "category") return cats?.get(v) || v;
  if (field === "location" && typeof v === "object") return `${v.lat}, ${v.lon}${v.accuracy_m != null ? ` ±${v.accuracy_m} m` : ""}`;
  if (field.endsWith("_at") && typeof v === "string") return when(v);
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}
const fieldName = (f) => (t("fld_" + f) === "fld_" + f ? f : t("fld_" + f));

// ------------------------------------------------------------------------------------------ queue

const DEFAULT_FILTERS = { state: "open", risk_level: [], sort: "-reported_at" };
let qf = JSON.parse(sessionStorage.getItem("gridcase.qf") || "null") || { ...DEFAULT_FILTERS };
let q = { items: [], cursor: null, selected: new Map(), results: null, loading: false };

function queueParams(filters, extra = {}) {
  const p = new URLSearchParams();
  if (filters.state === "open") p.set("state", OPEN_STATES.join(","));
  else if (filters.state) p.set("state", filters.state);
  if (filters.risk_level?.length) p.set("risk_level", filters.risk_level.join(","));
  for (const k of ["category", "region", "level", "overdue", "flag", "has_conflicts", "reporter", "from", "to", "q", "sort"]) {
    if (filters[k] != null && filters[k] !== "") p.set(k, filters[k]);
  }
  for (const [k, v] of Object.entries(extra)) p.set(k, v);
  return p;
}

export async function renderQueue() {
  me = (await session())?.user;
  const [cats] = await Promise.all([categoryMap().catch(() => new Map()), loadRegions()]);
  const wide = window.innerWidth >= 900;
  const f = qf;
  view().innerHTML = `<h2>${esc(t("queue_title"))}</h2>
    <details class="card filters" id="qf-box"${wide || sessionStorage.getItem("gridcase.qf.open") ? " open" : ""}><summary>${esc(t("filters"))}</summary>
    <form id="qf">
      <div class="fgrid">
        <label class="wide">${esc(t("search"))}<input type="search" name="q" value="${esc(f.q || "")}"></label>
        <label>${esc(t("f_state"))}<select name="state">${opt("", t("f_all"), f.state)}${opt("open", t("f_open"), f.state)}${STATES.map((s) => opt(s, t("s_" + s), f.state)).join("")}</select></label>
        <fieldset class="risks"><legend>${esc(t("f_risk"))}</legend>${["red", "yellow", "blue"].map((r) => `<label class="check risk-${r}"><input type="checkbox" name="risk_level" value="${r}"${f.risk_level?.includes(r) ? " checked" : ""}>${esc(t(r))}</label>`).join("")}</fieldset>
        <label>${esc(t("f_category"))}<select name="category">${opt("", t("f_all"), f.category)}${[...cats].map(([c, n]) => opt(c, n, f.category)).join("")}</select></label>
        <label>${esc(t("f_region"))}<select name="region">${opt("", t("f_all"), f.region)}${regions.slice(1).map((r) => opt(r.code, `${"　".repeat(r.depth - 1)}${r.name}`, f.region)).join("")}</select></label>
        <label>${esc(t("f_level"))}<select name="level">${opt("", t("f_all"), f.level)}${["grid", "village", "township", "city"].map((l) => opt(l, t("level_" + l), f.level)).join("")}</select></label>
        <label>${esc(t("f_overdue"))}<select name="overdue">${opt("", t("f_all"), f.overdue)}${opt("true", t("light_red"), f.overdue)}${opt("false", t("no"), f.overdue)}</select></label>
        <label>${esc(t("f_flag"))}<select name="flag">${opt("", t("f_all"), f.flag)}${opt("any", t("f_any_flag"), f.flag)}${FLAGS.map((x) => opt(x, t("flag_" + x), f.flag)).join("")}</select></label>
        <label>${esc(t("f_conflicts"))}<select name="has_conflicts">${opt("", t("f_all"), f.has_conflicts)}${opt("true", t("yes"), f.has_conflicts)}${opt("false", t("no"), f.has_conflicts)}</select></label>
        <label>${esc(t("f_reporter"))}<input type="text" name="reporter" value="${esc(f.reporter || "")}" autocapitalize="none"></label>
        <label>${esc(t("f_from"))}<input type="date" name="from" value="${esc(f.from || "")}"></label>
        <label>${esc(t("f_to"))}<input type="date" name="to" value="${esc(f.to || "")}"></label>
        <label>${esc(t("f_sort"))}<select name="sort">${["-reported_at", "reported_at", "due_at", "-updated_at", "number"].map((s) => opt(s, t("sort_" + s.replace("-", "_")), f.sort)).join("")}</select></label>
      </div>
      <div class="row" style="margin-top:10px"><button type="submit" class="primary inline">${esc(t("apply"))}</button>
        <button type="button" data-action="q-reset">${esc(t("reset"))}</button>
        <button type="button" data-action="q-export" data-format="csv">${esc(t("export_csv"))}</button>
        <button type="button" data-action="q-export" data-format="xlsx">${esc(t("export_xlsx"))}</button></div>
    </form></details>
    <div class="bulkbar card" id="bulkbar">
      <label class="check"><input type="checkbox" id="q-all" aria-label="${esc(t("select_page"))}">${esc(t("select_page"))}</label>
      <strong id="q-count" data-testid="selected-count">${esc(t("selected", { n: q.selected.size }))}</strong>
      <button type="button" data-action="bulk" data-bulk="accept">${esc(t("bulk_accept"))}</button>
      <input type="text" id="bulk-reason" placeholder="${esc(t("reason"))}" aria-label="${esc(t("reason"))}">
      <button type="button" class="danger" data-action="bulk" data-bulk="return">${esc(t("bulk_return"))}</button>
    </div>
    <div id="q-results" aria-live="polite">${q.results || ""}</div>
    <div id="q-list" class="qlist"></div>
    <p class="row"><span id="q-shown" class="hint grow"></span><button type="button" data-action="q-more" id="q-more" hidden>${esc(t("load_more"))}</button></p>`;
  $("#qf").addEventListener("submit", (e) => { e.preventDefault(); readFilters(); loadQueue(true); });
  $("#qf-box").addEventListener("toggle", (e) => { if (!wide) sessionStorage.setItem("gridcase.qf.open", e.target.open ? "1" : ""); });
  $("#q-list").addEventListener("change", onCheck);
  $("#q-all").addEventListener("change", (e) => {
    for (const box of document.querySelectorAll("#q-list input[data-bulk]")) { box.checked = e.target.checked; onCheck({ target: box }); }
  });
  q.cats = cats;
  await loadQueue(true);
}

function readFilters() {
  const form = $("#qf");
  const data = new FormData(form);
  qf = { risk_level: data.getAll("risk_level") };
  for (const [k, v] of data.entries()) if (k !== "risk_level" && String(v).trim() !== "") qf[k] = String(v).trim();
  sessionStorage.setItem("gridcase.qf", JSON.stringify(qf));
}

async function loadQueue(first) {
  if (q.loading) return;
  q.loading = true;
  const list = $("#q-list");
  if (first) { q.items = []; q.cursor = null; q.selected.clear(); list.innerHTML = `<p class="loading">…</p>`; }
  try {
    const res = await api(`/api/v1/cases?${queueParams(qf, { limit: 50, ...(q.cursor && !first ? { cursor: q.cursor } : {}) })}`);
    const page = await res.json();
    q.cursor = res.headers.get("X-Next-Cursor");
    q.items.push(...page);
    if (!list.isConnected) return;
    if (first) list.innerHTML = "";
    list.insertAdjacentHTML("beforeend", page.map((c) => queueRow(c)).join("") || (first ? `<p class="hint">${esc(t("empty"))}</p>` : ""));
    $("#q-more").hidden = !q.cursor;
    $("#q-shown").textContent = `${t("shown", { n: q.items.length })}${q.cursor ? "" : ` · ${t("no_more")}`}`;
    updateCount();
  } catch (e) {
    list.innerHTML = `<p class="err" role="alert">${esc(t("load_failed"))}: ${esc(problemText(e))}</p>`;
  } finally { q.loading = false; }
}

function queueRow(c) {
  const cat = q.cats?.get(c.category) || c.category;
  return `<div class="qrow" data-case-row="${esc(c.id)}" data-state="${esc(c.state)}">
    <label class="qcheck"><input type="checkbox" data-bulk="${esc(c.id)}" data-version="${c.version}" aria-label="${esc(c.number)}"${q.selected.has(c.id) ? " checked" : ""}></label>
    <a class="qbody" href="#review/${esc(c.id)}">
      <span class="qline"><strong class="num">${esc(c.number)}</strong>${stateChip(c.state)}${riskChip(c.risk_level)}${lightChip(c.light)}${c.suspended ? `<span class="chip st">${esc(t("suspended"))}</span>` : ""}${c.open_conflicts ? `<span class="chip conflict">${esc(t("open_conflicts_n", { n: c.open_conflicts }))}</span>` : ""}${flagChips(c.flags)}</span>
      <span class="qline"><strong>${esc(cat)}</strong><span class="desc">${esc((c.description || "").slice(0, 80))}</span></span>
      <span class="qline meta">${esc(regionName(c.grid_code))} · ${esc(c.reporter)} · ${esc(when(c.reported_at))}${c.assignee ? ` · ${esc(t("assignee"))} ${esc(c.assignee)}` : ""}${c.due_at ? ` · ${esc(t("due_at"))} ${esc(when(c.due_at))}` : ""}</span>
    </a></div>`;
}

function onCheck(e) {
  const box = e.target;
  if (!box.dataset?.bulk) return;
  if (box.checked) q.selected.set(box.dataset.bulk, Number(box.dataset.version));
  else q.selected.delete(box.dataset.bulk);
  updateCount();
}
function updateCount() { const el = $("#q-count"); if (el) el.textContent = t("selected", { n: q.selected.size }); }

async function bulk(action) {
  const reason = $("#bulk-reason")?.value.trim();
  if (!q.selected.size) return ctx.toast(t("selected", { n: 0 }));
  if (action === "return" && !reason) { ctx.toast(t("reason_needed")); $("#bulk-reason").focus(); return; }
  const cases = [...q.selected].map(([id, base_version]) => ({ id, base_version }));
  const numbers = new Map(q.items.map((c) => [c.id, c.number]));
  q.results = null;
  $("#q-results").innerHTML = "";
  try {
    const results = await apiJson("/api/v1/cases/transitions", { method: "POST", body: { action, cases, ...(reason ? { reason } : {}) } });
    const ok = results.filter((r) => r.status === "applied" || r.status === "duplicate").length;
    q.results = `<div class="card" data-testid="bulk-results"><strong>${esc(t("bulk_done", { a: t("a_" + action), ok, bad: results.length - ok }))}</strong>
      <ul class="plain">${results.map((r) => `<li data-result="${esc(r.status)}" data-id="${esc(r.id)}"><strong>${esc(numbers.get(r.id) || short(r.id))}</strong> ${esc(t("r_" + r.status))}${r.detail ? ` — <span class="err">${esc(r.detail)} (${esc(r.code)})</span>` : ""}${(r.conflicts || []).map((c) => ` — ${esc(fieldName(c.field))}: ${esc(fmtVal(c.field, c.server))}`).join("")}${r.flags?.length ? ` ${flagChips(r.flags)}` : ""}</li>`).join("")}</ul></div>`;
  } catch (e) {
    q.results = `<p class="err" role="alert">${esc(problemText(e))}</p>`;
  }
  $("#q-results").innerHTML = q.results;
  await loadQueue(true);
}

// ------------------------------------------------------------------------------------------ case page

let lastResult = null;

export async function renderReviewCase(id) {
  me = (await session())?.user;
  view().innerHTML = `<p><a class="btn" href="#queue">← ${esc(t("back_queue"))}</a></p><p class="loading">…</p>`;
  let c, cats, wf, row;
  try {
    [c, cats, wf] = await Promise.all([apiJson(`/api/v1/cases/${encodeURIComponent(id)}`), categoryMap(), workflow(), loadRegions()]);
    row = (await apiJson(`/api/v1/cases?${new URLSearchParams({ q: c.number || c.id, limit: 5 })}`).catch(() => [])).find((x) => x.id === c.id);
  } catch (e) { view().querySelector(".loading")?.remove(); return failed(e); }
  const allowed = wf.filter((w) => w.state === c.state && (w.roles.includes(me.role) || (w.roles.includes("assignee") && c.assignee === me.username)
    || (w.roles.includes("reporter") && c.reporter === me.username)) && w.needs.every((n) => (n === "level_below_city" ? c.level !== "city"
    : n === "not_suspended" ? !c.suspended : n === "suspended" ? c.suspended : true)));
  const result = lastResult?.id === id ? lastResult.html : "";
  lastResult = null;
  const openConflicts = c.conflicts.filter((x) => x.status === "open");
  view().innerHTML = `<p><a class="btn" href="#queue">← ${esc(t("back_queue"))}</a></p>
    <h2 data-testid="case-title">${esc(c.number)} · ${esc(cats.get(c.category) || c.category)} ${riskChip(c.risk_level)}</h2>
    <div id="act-result" aria-live="polite">${result}</div>
    <div class="cols">
    <div>
      <div class="card"><dl class="kv">
        <dt>${esc(t("state"))}</dt><dd data-testid="review-state" data-state="${esc(c.state)}">${stateChip(c.state)}${c.suspended ? ` <span class="chip st">${esc(t("suspended"))}</span>` : ""}</dd>
        <dt>${esc(t("risk"))}</dt><dd>${riskChip(c.risk_level)}</dd>
        <dt>${esc(t("light"))}</dt><dd>${lightChip(row?.light) || "—"}${row?.due_at ? ` ${esc(t("due_at"))} ${esc(when(row.due_at))}` : ""}</dd>
        <dt>${esc(t("level"))}</dt><dd>${esc(t("level_" + c.level))}</dd>
        <dt>${esc(t("grid"))}</dt><dd>${esc(regionName(c.grid_id))}</dd>
        <dt>${esc(t("micro_grid"))}</dt><dd>${esc(c.micro_grid_id || "—")}</dd>
        <dt>${esc(t("location"))}</dt><dd>${esc(fmtVal("location", c.location))}</dd>
        <dt>${esc(t("reporter"))}</dt><dd>${esc(c.reporter)}</dd>
        <dt>${esc(t("reported_at"))}</dt><dd>${esc(when(c.reported_at))}</dd>
        <dt>${esc(t("assignee"))}</dt><dd data-testid="review-assignee">${esc(c.assignee || "—")}${c.unit ? ` · ${esc(c.unit)}` : ""}</dd>
        ${c.flags.length ? `<dt>${esc(t("flags"))}</dt><dd>${flagChips(c.flags)}</dd>` : ""}
        ${c.missing_photos.length ? `<dt>${esc(t("photo_missing"))}</dt><dd class="warn">${c.missing_photos.length}</dd>` : ""}
      </dl><p class="desc-full">${esc(c.description || "")}</p></div>
      ${["evidence", "rectification"].map((role) => `<h3>${esc(t(role))} (${c.photos_by_role[role].length})</h3>
        <div class="thumbs" data-role="${role}">${c.photos_by_role[role].map((p) => `<button type="button" class="thumb thumbbtn" data-action="photo" data-sha="${esc(p.sha256)}" aria-label="${esc(t(role))}"${p.missing ? " disabled" : ""}>${p.missing ? `<span class="hint">${esc(t("photo_missing"))}</span>` : `<img alt="${esc(t(role))}" data-thumb="${esc(p.sha256)}">`}</button>`).join("") || `<p class="hint">${esc(t("no_photos"))}</p>`}</div>`).join("")}
      ${c.notes.length ? `<h3>${esc(t("notes"))}</h3>${c.notes.map((n) => `<div class="card"><div class="meta">${esc(n.author)} · ${esc(when(n.created_at))}</div>${esc(n.text)}</div>`).join("")}` : ""}
      ${c.duplicates.length ? `<h3>${esc(t("duplicates"))}</h3><ul class="plain">${c.duplicates.map((d) => `<li><a class="btn" href="#review/${esc(d.id)}">${esc(d.number)}</a> ${esc(d.relation === "merged_into_this" ? t("s_merged") : t("flag_possible_duplicate"))}</li>`).join("")}</ul>` : ""}
      ${c.merged_into ? `<p><a class="btn" href="#review/${esc(c.merged_into)}">${esc(t("fld_merged_into"))} →</a></p>` : ""}
    </div>
    <div>
      <h3>${esc(t("actions"))}</h3>
      <div class="row" id="act-buttons">${allowed.map((w) => `<button type="button" data-action="act" data-act="${esc(w.action)}" data-needs="${esc(w.needs.join(","))}"${["reject", "return"].includes(w.action) ? ' class="danger"' : ""}>${esc(t("a_" + w.action))}</button>`).join("") || `<p class="hint">${esc(t("no_actions"))}</p>`}</div>
      <form id="act-form" class="card" hidden></form>
      <h3 id="conflicts">${esc(t("conflicts_title"))} (${openConflicts.length})</h3>
      <div data-testid="case-conflicts">${openConflicts.map((x) => conflictCard(x, cats)).join("") || `<p class="hint">${esc(t("none_open"))}</p>`}
        ${c.conflicts.filter((x) => x.status !== "open").map((x) => `<p class="meta">${esc(fieldName(x.field))}: ${esc(t("c_resolved", { c: fmtVal(x.field, x.resolved_value, cats) }))}</p>`).join("")}</div>
      <h3>${esc(t("timeline"))}</h3>
      <ol class="timeline">${c.timeline.slice().reverse().map((e) => timelineItem(e, cats)).join("")}</ol>
    </div></div>
    <dialog id="photo-dlg"><div class="dlg-body"><img id="dlg-img" alt=""><div class="row"><button type="button" data-action="original" id="dlg-orig">${esc(t("original"))}</button><button type="button" data-action="dlg-close">${esc(t("close"))}</button></div></div></dialog>`;
  $("#act-form").addEventListener("submit", (e) => { e.preventDefault(); submitAction(c); });
  view().dataset.caseId = c.id;
  view().dataset.version = c.version;
  view().caseData = c;
  for (const img of document.querySelectorAll("img[data-thumb]")) {
    blobUrl(img.dataset.thumb, "thumb").then((u) => { img.src = u; }).catch(() => { img.alt = t("photo_missing"); });
  }
}

function timelineItem(e, cats) {
  const action = e.action === "transition" && e.data?.action ? t("a_" + e.data.action) : (t("ev_" + e.action) === "ev_" + e.action ? e.action : t("ev_" + e.action));
  const changes = Object.entries(e.changes || {}).map(([f, [from, to]]) => `<li><span class="meta">${esc(fieldName(f))}</span>: ${esc(fmtVal(f, from, cats))} → <strong>${esc(fmtVal(f, to, cats))}</strong></li>`).join("");
  const extra = [e.data?.reason && `${t("reason")}: ${e.data.reason}`, e.data?.choose && `${t("c_resolved", { c: e.data.choose })}`].filter(Boolean);
  return `<li data-version="${e.version}"><div><strong>v${e.version} ${esc(action)}</strong> · ${esc(e.actor || "—")} · ${esc(when(e.at))}</div>
    <div class="meta">${esc(t("device"))} ${esc(e.device_id || "—")}${e.client_time ? ` · ${esc(when(e.client_time))}` : ""}${e.op_id ? ` · op ${esc(short(e.op_id))}` : ""}</div>
    ${changes ? `<ul class="changes">${changes}</ul>` : ""}${extra.map((x) => `<div class="meta">${esc(x)}</div>`).join("")}</li>`;
}

function actionForm(action, needs, c) {
  const form = $("#act-form");
  const parts = [];
  if (needs.includes("reason")) parts.push(`<label class="lbl" for="act-reason">${esc(t("reason"))}</label><textarea id="act-reason" required maxlength="500"></textarea>`);
  if (needs.includes("assignee_or_unit")) {
    parts.push(`<label class="lbl" for="act-assignee">${esc(t("assignee_user"))}</label><input type="text" id="act-assignee" autocapitalize="none" value="${esc(c.assignee || "")}">
      <label class="lbl" for="act-unit">${esc(t("or_unit"))}</label><input type="text" id="act-unit" value="${esc(c.unit || "")}">`);
  }
  if (needs.includes("target")) {
    parts.push(`<label class="lbl" for="act-target">${esc(t("merge_target"))}</label><input type="text" id="act-target" autocapitalize="none">
      ${c.duplicates.filter((d) => d.relation === "possible_duplicate_of").map((d) => `<button type="button" data-action="pick-target" data-number="${esc(d.number)}">${esc(d.number)}</button>`).join(" ")}`);
  }
  if (needs.includes("rectification_photo_or_note")) parts.push(`<label class="lbl" for="act-note">${esc(t("note_text"))}</label><textarea id="act-note" required></textarea>`);
  form.innerHTML = `<strong>${esc(t("a_" + action))}</strong>${parts.join("")}<p class="err" id="act-error"></p>
    <div class="row"><button type="submit" class="primary inline" data-act-confirm="${esc(action)}">${esc(t("confirm"))} ${esc(t("a_" + action))}</button>
    <button type="button" data-action="act-cancel">${esc(t("cancel"))}</button></div>`;
  form.dataset.act = action;
  form.hidden = false;
  form.querySelector("textarea, input")?.focus();
}

async function submitAction(c, action = $("#act-form").dataset.act) {
  const body = { action, base_version: c.version };
  const err = $("#act-error");
  const val = (sel) => $(sel)?.value.trim() || "";
  if ($("#act-reason")) { body.reason = val("#act-reason"); if (!body.reason) { err.textContent = t("reason_needed"); return; } }
  if ($("#act-assignee")) {
    if (val("#act-assignee")) body.assignee = val("#act-assignee");
    if (val("#act-unit")) body.unit = val("#act-unit");
    if (!body.assignee && !body.unit) { err.textContent = t("need_assignee"); return; }
  }
  if ($("#act-note")) { const text = val("#act-note"); if (!text) { err.textContent = t("resolve_needs"); return; } body.note = { text, captured_at: isoWithOffset(new Date()) }; }
  if ($("#act-target")) {
    const v = val("#act-target");
    if (!v) { err.textContent = t("need_target"); return; }
    if (UUID_RE.test(v)) body.target = v.toLowerCase();
    else {
      try {
        const hit = (await apiJson(`/api/v1/cases?${new URLSearchParams({ q: v, limit: 5 })}`)).find((x) => x.number === v);
        if (!hit) { err.textContent = t("target_not_found"); return; }
        body.target = hit.id;
      } catch (e) { err.textContent = problemText(e); return; }
    }
  }
  for (const b of document.querySelectorAll("#act-buttons button, #act-form button")) b.disabled = true;
  try {
    const r = await apiJson(`/api/v1/cases/${encodeURIComponent(c.id)}/transitions`, { method: "POST", body });
    const stale = r.flags?.includes("stale_transition");
    const msg = r.status === "conflict" ? t("res_conflict", { a: t("a_" + action) }) : stale ? t("res_stale") : t("res_applied", { a: t("a_" + action) });
    lastResult = { id: r.case?.id || c.id, html: `<p class="card ${r.status === "conflict" ? "err" : "ok"}" data-testid="act-result" data-status="${esc(r.status)}">${esc(msg)}${(r.conflicts || []).map((x) => ` — ${esc(fieldName(x.field))}: ${esc(t("c_server"))} ${esc(fmtVal(x.field, x.server))}, ${esc(t("c_client"))} ${esc(fmtVal(x.field, x.client))}`).join("")} ${flagChips(r.flags)}</p>` };
    if (r.case?.id && r.case.id !== c.id) return ctx.go(`#review/${r.case.id}`);
    await renderReviewCase(c.id);
  } catch (e) {
    for (const b of document.querySelectorAll("#act-buttons button, #act-form button")) b.disabled = false;
    if ($("#act-form").hidden) $("#act-result").innerHTML = `<p class="card err" role="alert" data-testid="act-result" data-status="error">${esc(problemText(e))}</p>`;
    else err.textContent = problemText(e);
  }
}

// ------------------------------------------------------------------------------------------ conflicts

function conflictCard(x, cats) {
  const stateField = x.field === "state";
  return `<div class="card conflict-card" data-conflict="${esc(x.id)}">
    <div class="row"><strong class="grow">${x.case_number ? `<a class="btn" href="#review/${esc(x.case_id)}">${esc(x.case_number)}</a> · ` : ""}${esc(fieldName(x.field))}</strong>
      <span class="meta">${esc(t("c_base"))}: ${esc(fmtVal(x.field, x.base, cats))}</span></div>
    <div class="side">
      <div class="val-box"><div class="meta">${esc(t("c_server"))}</div><div class="big" data-testid="server-value">${esc(fmtVal(x.field, x.server, cats))}</div>
        <button type="button" data-action="resolve-conflict" data-choose="server" data-id="${esc(x.id)}">${esc(t("keep_server"))}</button></div>
      <div class="val-box"><div class="meta">${esc(t("c_client"))} · ${esc(t("by_whom", { u: x.username || "—", d: short(x.device_id) }))}</div><div class="big" data-testid="client-value">${esc(fmtVal(x.field, x.client, cats))}</div>
        <button type="button" data-action="resolve-conflict" data-choose="client" data-id="${esc(x.id)}"${stateField ? " disabled" : ""}>${esc(t("take_field"))}</button></div>
    </div>
    <div class="meta">${esc(when(x.created_at))}${x.base_version ? ` · v${x.base_version}` : ""}${stateField ? ` · ${esc(t("c_state_hint"))}` : ""}</div></div>`;
}

export async function renderConflicts() {
  me = (await session())?.user;
  view().innerHTML = `<h2>${esc(t("conflicts_title"))}</h2><div id="c-list"><p class="loading">…</p></div>`;
  try {
    const [list, cats] = await Promise.all([apiJson("/api/v1/conflicts?status=open"), categoryMap()]);
    $("#c-list").innerHTML = list.map((x) => conflictCard(x, cats)).join("") || `<p class="hint">${esc(t("none_open"))}</p>`;
  } catch (e) { $("#c-list").innerHTML = ""; failed(e); }
}

async function resolveConflict(el) {
  el.disabled = true;
  try {
    const r = await apiJson(`/api/v1/conflicts/${encodeURIComponent(el.dataset.id)}/resolve`, { method: "POST", body: { choose: el.dataset.choose } });
    ctx.toast(`${fieldName(r.field)}: ${t("c_resolved", { c: fmtVal(r.field, r.resolved_value, await categoryMap()) })}`);
    ctx.render();
  } catch (e) { el.disabled = false; ctx.toast(problemText(e)); }
}

// ------------------------------------------------------------------------------------------ devices

export async function renderDevices() {
  me = (await session())?.user;
  const unsent = sessionStorage.getItem("gridcase.dev.unsent") !== "0";
  view().innerHTML = `<h2>${esc(t("devices_title"))}</h2>
    <label class="check"><input type="checkbox" id="dev-unsent"${unsent ? " checked" : ""}>${esc(t("only_unsent"))}</label><div id="dev-list"><p class="loading">…</p></div>`;
  $("#dev-unsent").addEventListener("change", (e) => { sessionStorage.setItem("gridcase.dev.unsent", e.target.checked ? "1" : "0"); renderDevices(); });
  try {
    const list = await apiJson(`/api/v1/devices?unsent=${unsent}`);
    $("#dev-list").innerHTML = list.map((d) => `<div class="card device" data-device="${esc(d.id)}">
      <div class="row"><strong class="grow">${esc(d.display_name)} (${esc(d.username)})</strong><span class="chip st">${esc(t("role_" + d.role))}</span>
        ${d.outbox_pending ? `<span class="chip waiting">${esc(t("unsent_n", { n: d.outbox_pending }))}</span>` : `<span class="chip sent">${esc(t("none_pending"))}</span>`}${d.revoked_at ? `<span class="chip conflict">${esc(t("revoked"))}</span>` : ""}</div>
      <div class="meta">${esc(t("device"))} <code>${esc(d.id)}</code> · ${esc(regionName(d.region))}</div>
      <div>${d.outbox_oldest ? `${esc(t("since", { t: agoText(d.outbox_oldest) }))} (${esc(when(d.outbox_oldest))}) · ` : ""}${esc(t("last_contact", { t: agoText(d.last_seen) }))} (${esc(when(d.last_seen))})</div></div>`).join("")
      || `<p class="hint">${esc(t("empty"))}</p>`;
  } catch (e) { $("#dev-list").innerHTML = ""; failed(e); }
}

// ------------------------------------------------------------------------------------------ dashboard

let dash = JSON.parse(sessionStorage.getItem("gridcase.dash") || "null") || {};

export async function renderDashboard() {
  me = (await session())?.user;
  await loadRegions();
  const region = dash.region || me.region;
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
    renderDashboard();
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

let dashMap = null;
async function drawMap(features, region, level) {
  const el = $("#dash-map");
  if (!el || !ctx.loadLeaflet) return;
  const L = await ctx.loadLeaflet();
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
      .on("click", () => ctx.go(`#review/${f.id}`)).addTo(map);
    bounds = bounds ? bounds.extend([lat, lon]) : L.latLngBounds([[lat, lon], [lat, lon]]);
  }
  if (bounds) map.fitBounds(bounds, { padding: [16, 16] }); else map.setView([27.8, 120.65], 12);
  $("#map-legend").innerHTML = `<strong>${esc(t("legend"))}</strong> ${["green", "yellow", "red"].map((l) => `<span class="mk mk-${l}">${esc(t("light_" + l))}</span> ${count[l]}`).join(" ")}
    ${features.length - located ? ` · ${esc(t("no_location", { n: features.length - located }))}` : ""}`;
}

// ------------------------------------------------------------------------------------------ actions

/** Clicks on [data-action] elements of the console; returns true when handled. */
export async function onAction(el, a) {
  if (a === "q-more") { await loadQueue(false); return true; }
  if (a === "q-reset") { qf = { ...DEFAULT_FILTERS }; sessionStorage.removeItem("gridcase.qf"); q.results = null; await renderQueue(); return true; }
  if (a === "q-export") {
    const fmt = el.dataset.format;
    try { await download(`/api/v1/cases/export?${queueParams(qf, { format: fmt })}`, `gridcase-${new Date().toISOString().slice(0, 10)}.${fmt}`); } catch (e) { ctx.toast(problemText(e)); }
    return true;
  }
  if (a === "bulk") { await bulk(el.dataset.bulk); return true; }
  if (a === "act") {
    const c = view().caseData;
    const needs = (el.dataset.needs || "").split(",").filter((n) => ["reason", "assignee_or_unit", "target", "rectification_photo_or_note"].includes(n));
    if (needs.length) actionForm(el.dataset.act, needs, c);
    else { $("#act-form").hidden = true; $("#act-form").innerHTML = ""; await submitAction(c, el.dataset.act); }
    return true;
  }
  if (a === "act-cancel") { $("#act-form").hidden = true; return true; }
  if (a === "pick-target") { $("#act-target").value = el.dataset.number; return true; }
  if (a === "resolve-conflict") { await resolveConflict(el); return true; }
  if (a === "photo") {
    const dlg = $("#photo-dlg");
    $("#dlg-orig").dataset.sha = el.dataset.sha;
    $("#dlg-img").removeAttribute("src");
    dlg.showModal();
    try { $("#dlg-img").src = await blobUrl(el.dataset.sha, "display"); } catch (e) { ctx.toast(problemText(e)); }
    return true;
  }
  if (a === "original") {
    try { await download(`/api/v1/media/${el.dataset.sha}?variant=original`, `${el.dataset.sha}-original.jpg`); } catch (e) { ctx.toast(problemText(e)); }
    return true;
  }
  if (a === "dlg-close") { $("#photo-dlg")?.close(); return true; }
  return false;
}
