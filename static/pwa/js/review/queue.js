// 审核 (#queue): the filters of GET /api/v1/cases (kept for the session), sort, pages by the X-Next-Cursor
// cursor, CSV / Excel ledgers of the same filters, and bulk accept / return answered per case.
import { api, apiJson } from "../api.js";
import { t } from "../i18n.js";
import { esc, flagChips, lightChip, opt, riskChip, stateChip, toast, view, $ } from "../ui.js";
import { categoryMap, download, fieldName, FLAGS, fmtVal, loadRegions, OPEN_STATES, problemText, regionName, short, STATES, when } from "./common.js";
import { markQueueSeen } from "../watch.js";

const DEFAULT_FILTERS = { state: "open", risk_level: [], sort: "-reported_at" };
let qf = JSON.parse(sessionStorage.getItem("gridcase.qf") || "null") || { ...DEFAULT_FILTERS };
const q = { items: [], cursor: null, selected: new Map(), results: null, loading: false };

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

export async function render() {
  markQueueSeen();
  const [cats, regions] = await Promise.all([categoryMap().catch(() => new Map()), loadRegions()]);
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
  const data = new FormData($("#qf"));
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
  if (!q.selected.size) return toast(t("selected", { n: 0 }));
  if (action === "return" && !reason) { toast(t("reason_needed")); $("#bulk-reason").focus(); return; }
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

export const actions = {
  "q-more": () => loadQueue(false),
  "q-reset": () => { qf = { ...DEFAULT_FILTERS }; sessionStorage.removeItem("gridcase.qf"); q.results = null; return render(); },
  async "q-export"(el) {
    const fmt = el.dataset.format;
    try { await download(`/api/v1/cases/export?${queueParams(qf, { format: fmt })}`, `gridcase-${new Date().toISOString().slice(0, 10)}.${fmt}`); } catch (e) { toast(problemText(e)); }
  },
  bulk: (el) => bulk(el.dataset.bulk),
};
