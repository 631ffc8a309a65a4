// The field app: log in once, capture reports offline, keep an outbox, sync, work on my cases, see the grid.
// Views are plain functions that render into <main>; state lives in IndexedDB (db.js) and the sync engine.
import * as store from "./db.js";
import { HttpError, lang, login, logout, Offline, session } from "./api.js";
import { setLang, t } from "./i18n.js";
import { enqueue, onChange, prunePhotos, pull, refreshReference, requestSync, status as syncStatus, syncNow } from "./sync.js";
import { editItem, isUnsent, newItem, outboxSummary, pendingOnCase, resend, STATES } from "./core/outbox.js";
import { locateNear } from "./core/geo.js";
import { ago, isoWithOffset } from "./core/time.js";
import { preparePhotoAsync } from "./photo.js";
import * as review from "./review.js";

const $ = (sel, el = document) => el.querySelector(sel);
const view = () => $("#view");
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const OPEN = new Set(["reported", "accepted", "assigned", "in_progress", "returned", "resolved"]);
const MAX_DESCRIPTION = 2000;
const GOOD_ACCURACY_M = 50;

let me = null; // the logged-in user (from the session)
let draft = null; // the report being captured or fixed
let geo = { fix: null, error: null, watch: null };
let photoUrls = new Map();
let updateReg = null;

// ------------------------------------------------------------------------------------------ helpers

function toast(msg) {
  const el = $("#toast");
  el.innerHTML = `<span>${esc(msg)}</span>`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.innerHTML = ""; }, 3500);
}

function go(hash) { if (location.hash === hash) render(); else location.hash = hash; }

function bytes(n) {
  if (!Number.isFinite(n)) return "?";
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(n < 10 && i ? 1 : 0)} ${u[i]}`;
}

async function categories() {
  const all = (await store.getCached("categories")) || [];
  return all.filter((c) => !me || !c.roles || c.roles.includes(me.role));
}
async function categoryName(code) {
  const c = ((await store.getCached("categories")) || []).find((x) => x.code === code);
  return c ? (lang() === "en" ? c.name_en : c.name_zh) : code;
}
async function microGrids() { return (await store.getCached("geojson"))?.data?.features || []; }

function riskChip(r) { return r ? `<span class="chip ${esc(r)}">${esc(t(r))}</span>` : ""; }
function stateChip(s) { return `<span class="chip st">${esc(t("s_" + s))}</span>`; }
function itemChip(s) { return `<span class="chip ${esc(s)}">${esc(t("st_" + s))}</span>`; }

function photoUrl(sha, blob) {
  if (!photoUrls.has(sha) && blob) photoUrls.set(sha, URL.createObjectURL(blob));
  return photoUrls.get(sha) || "";
}

// ------------------------------------------------------------------------------------------ chrome

async function statusBar() {
  const items = await store.allItems();
  const sum = outboxSummary(items);
  const parts = [];
  if (sum.pending) {
    parts.push(`<span class="alert">${esc(t("pending", { n: sum.pending }))}</span>`);
    parts.push(`<span>${esc(t("oldest", { t: ago(Date.now() - Date.parse(sum.oldest), lang()) }))}</span>`);
  } else parts.push(`<span>${esc(t("none_pending"))}</span>`);
  try {
    const est = await navigator.storage?.estimate?.();
    if (est) parts.push(`<span>${esc(t("storage", { used: bytes(est.usage), quota: bytes(est.quota) }))}</span>`);
  } catch { /* not available */ }
  const last = syncStatus.last_ok || (await store.getMeta("pulled_at"));
  if (last) parts.push(`<span>${esc(t("last_sync", { t: ago(Date.now() - last, lang()) }))}</span>`);
  $("#statusbar").innerHTML = parts.join("");
  const fix = items.filter((i) => i.state === STATES.NEEDS_FIXING || i.state === STATES.CONFLICT).length;
  const tab = $('[data-tab="outbox"]');
  if (tab) tab.innerHTML = esc(t("tab_outbox")) + (sum.pending ? `<span class="badge" data-testid="outbox-badge">${sum.pending}</span>` : "") +
    (fix ? `<span class="badge" style="right:auto;left:8px">!</span>` : "");
  const net = $("#net");
  net.textContent = navigator.onLine ? t("online") : t("offline");
  net.classList.toggle("off", !navigator.onLine);
  const btn = $("#sync-btn");
  btn.textContent = syncStatus.phase === "syncing" ? t("syncing") : t("sync");
  btn.setAttribute("aria-busy", String(syncStatus.phase === "syncing"));
  await banner(sum);
}

async function banner(sum) {
  const s = await session();
  const el = $("#banner");
  if (s?.login_required && !location.hash.startsWith("#login")) {
    el.innerHTML = `<div class="banner"><span>${esc(t("relogin", { n: sum.pending }))}</span><a class="btn" href="#login">${esc(t("login"))}</a></div>`;
  } else if (updateReg) {
    el.innerHTML = `<div class="banner"><span>${esc(t("update_ready"))}</span><button type="button" data-action="update">${esc(t("update"))}</button></div>`;
  } else el.innerHTML = "";
}

const FIELD_TABS = ["capture", "tasks", "map", "outbox", "me"];
const CONSOLE_TABS = ["queue", "conflicts", "dash", "devices", "me"];

function chrome() {
  $("#brand").textContent = t("app");
  const consoleUser = review.isReviewer(me);
  document.body.classList.toggle("console", consoleUser);
  const nav = $("#tabs");
  const tabs = consoleUser ? CONSOLE_TABS : FIELD_TABS;
  if (nav.dataset.set !== tabs.join()) {
    nav.innerHTML = tabs.map((k) => `<a href="#${k}" data-tab="${k}"></a>`).join("");
    nav.dataset.set = tabs.join();
  }
  for (const a of document.querySelectorAll(".tabs a")) a.textContent = t("tab_" + a.dataset.tab);
  const name = location.hash.slice(1).split("/")[0] || (consoleUser ? "queue" : "capture");
  for (const a of document.querySelectorAll(".tabs a")) {
    if (a.dataset.tab === name || (name === "case" && a.dataset.tab === "tasks") || (name === "fix" && a.dataset.tab === "outbox")
      || (name === "review" && a.dataset.tab === "queue")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  $("#tabs").hidden = !me;
  statusBar();
}

// ------------------------------------------------------------------------------------------ routing

let renderGen = 0;

async function render() {
  // a newer navigation wins: a render still waiting for the session must not draw over the next view
  const gen = ++renderGen;
  const s = await session();
  if (gen !== renderGen) return;
  me = s?.user && !s.login_required ? s.user : s?.user || null;
  const [name, arg] = location.hash.slice(1).split("/");
  if (!s?.user || name === "login") return show(renderLogin, s);
  const views = { capture: renderCapture, tasks: renderTasks, case: renderCase, map: renderMap, outbox: renderOutbox, fix: renderFix, me: renderMe };
  if (review.isReviewer(me)) {
    Object.assign(views, { queue: review.renderQueue, review: review.renderReviewCase, conflicts: review.renderConflicts,
      devices: review.renderDevices, dash: review.renderDashboard });
  }
  const fn = views[name] || (review.isReviewer(me) ? review.renderQueue : renderCapture);
  if (fn !== renderCapture && fn !== renderMap) stopGeo();
  return show(fn, arg);
}

async function show(fn, arg) {
  view().dataset.view = fn.name;
  await fn(arg);
  chrome();
}

/** Sync events come in bursts (several per photo and per batch): redraw at most every 150 ms. */
let redraw = null;
function onSyncChange(kind) {
  if (!redraw) {
    redraw = { live: false };
    setTimeout(() => {
      const { live } = redraw;
      redraw = null;
      if (live) refreshLive();
      else if (view().dataset.view === "renderOutbox") render();
      else statusBar();
    }, 150);
  }
  if (kind !== "progress") redraw.live = true;
}

/** Views that only display data are redrawn when the outbox or the cases change. */
const LIVE = new Set(["renderTasks", "renderOutbox", "renderCase"]);
function refreshLive() {
  statusBar();
  if (LIVE.has(view().dataset.view) && !view().querySelector("textarea:focus, input:focus")) render();
}

// ------------------------------------------------------------------------------------------ login

async function renderLogin(s) {
  const items = await store.allItems();
  const pending = outboxSummary(items).pending;
  view().innerHTML = `
    <h2>${esc(t("login"))}</h2>
    ${s?.login_required ? `<p class="banner">${esc(t("relogin", { n: pending }))}</p>` : ""}
    <form id="login-form" autocomplete="on">
      <label class="lbl" for="username">${esc(t("username"))}</label>
      <input type="text" id="username" name="username" autocomplete="username" autocapitalize="none" required value="${esc(s?.user?.username || "")}">
      <label class="lbl" for="password" style="margin-top:10px">${esc(t("password"))}</label>
      <input type="password" id="password" name="password" autocomplete="current-password" required>
      <p class="err" id="login-error"></p>
      <button class="primary" type="submit">${esc(t("login"))}</button>
    </form>
    <p class="row" style="margin-top:16px"><button type="button" data-action="lang" data-lang="zh">中文</button><button type="button" data-action="lang" data-lang="en">English</button></p>`;
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const err = $("#login-error");
    err.textContent = "";
    const btn = e.target.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      const sess = await login($("#username").value.trim(), $("#password").value);
      me = sess.user;
      try { await refreshReference(true); } catch (x) { console.warn(x); }
      location.hash = review.isReviewer(sess.user) ? "#queue" : "#capture";
      requestSync("login");
    } catch (x) {
      err.textContent = x instanceof Offline ? t("login_offline") : `${t("login_failed")}: ${x.message}`;
    } finally { btn.disabled = false; }
  });
}

// ------------------------------------------------------------------------------------------ capture

function newDraft() {
  return { mode: "new", caseId: crypto.randomUUID(), category: null, risk: null, description: "", photos: [], micro_grid: "",
    on_spot: false, started: isoWithOffset(new Date()), busy: 0 };
}

function startGeo() {
  if (geo.watch !== null || !navigator.geolocation) return;
  geo.watch = navigator.geolocation.watchPosition((p) => {
    const fix = { lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: Math.round(p.coords.accuracy || 0), at: Date.now() };
    // keep the better fix unless the old one is stale
    if (!geo.fix || fix.accuracy_m <= geo.fix.accuracy_m || Date.now() - geo.fix.at > 60_000) geo.fix = fix;
    geo.error = null;
    updateWhere();
  }, (e) => { geo.error = e.message || String(e.code); updateWhere(); },
  { enableHighAccuracy: true, maximumAge: 10_000, timeout: 30_000 });
}
function stopGeo() {
  if (geo.watch !== null) navigator.geolocation.clearWatch(geo.watch);
  geo.watch = null;
}

async function foundMicroGrid() {
  if (!geo.fix) return null;
  const near = locateNear(await microGrids(), geo.fix.lat, geo.fix.lon, Math.min(geo.fix.accuracy_m, GOOD_ACCURACY_M));
  return near?.feature || null;
}

async function updateWhere() {
  const el = $("#where");
  if (!el || !draft) return;
  const fix = geo.fix;
  let html;
  if (fix) {
    html = `<p data-testid="gps">${fix.lat.toFixed(5)}, ${fix.lon.toFixed(5)} <strong>±${fix.accuracy_m} m</strong></p>`;
    if (fix.accuracy_m > GOOD_ACCURACY_M) html += `<p class="warn">${esc(t("poor_gps"))}</p>`;
    const f = await foundMicroGrid();
    html += f ? `<p data-testid="mg-found">${esc(t("mg_found", { name: f.properties.name }))}</p>` : `<p class="warn">${esc(t("mg_outside"))}</p>`;
  } else if (geo.error) html = `<p class="warn">${esc(t("no_gps"))}</p>`;
  else html = `<p class="hint">${esc(t("locating"))}</p>`;
  const withGps = draft.photos.find((p) => p.exif?.lat != null);
  if (!fix && withGps) html += `<button type="button" data-action="photo-gps">${esc(t("photo_gps"))}</button>`;
  el.innerHTML = html;
}

async function renderCapture() {
  if (!draft || draft.mode !== "new") draft = newDraft();
  startGeo();
  view().innerHTML = `<h2>${esc(t("capture_title"))}</h2>` + (await reportForm(draft)) +
    `<button class="primary" type="button" data-action="save-report">${esc(t("save_report"))}</button>`;
  bindForm();
  updateWhere();
}

async function reportForm(d) {
  const cats = await categories();
  const mgs = await microGrids();
  return `
    <fieldset><legend>${esc(t("category"))}</legend><div class="cats">
      ${cats.map((c) => `<button type="button" class="choice" data-action="cat" data-code="${esc(c.code)}" aria-pressed="${d.category === c.code}">${esc(lang() === "en" ? c.name_en : c.name_zh)}</button>`).join("")}
    </div></fieldset>
    <fieldset><legend>${esc(t("risk"))}</legend><div class="grid3">
      ${["red", "yellow", "blue"].map((r) => `<button type="button" class="choice risk-${r}" data-action="risk" data-risk="${r}" aria-pressed="${d.risk === r}">${esc(t("risk_" + r))}</button>`).join("")}
    </div></fieldset>
    <fieldset><label class="lbl" for="description">${esc(t("description"))}</label>
      <textarea id="description" placeholder="${esc(t("description_hint"))}">${esc(d.description)}</textarea>
      <div class="counter" id="counter"></div></fieldset>
    <fieldset><legend>${esc(t("photos"))}</legend>
      <label class="btn filebtn">${esc(t("add_photos"))}<input type="file" id="photo-input" accept="image/*" capture="environment" multiple></label>
      <div class="thumbs" id="thumbs">${thumbs(d)}</div></fieldset>
    <fieldset><legend>${esc(t("location"))}</legend><div id="where"></div>
      <label class="lbl" for="micro-grid">${esc(t("micro_grid"))}</label>
      <select id="micro-grid"><option value="">${esc(t("mg_auto"))}</option>
        ${mgs.map((f) => `<option value="${esc(f.properties.code)}" ${d.micro_grid === f.properties.code ? "selected" : ""}>${esc(f.properties.name)} (${esc(f.properties.code.slice(-4))})</option>`).join("")}
      </select></fieldset>
    ${me?.role === "grid_worker" ? `<label class="check"><input type="checkbox" id="on-spot" ${d.on_spot ? "checked" : ""}>${esc(t("on_spot"))}</label>` : ""}
    <p class="err" id="form-error"></p>`;
}

function thumbs(d) {
  const list = d.photos.map((p, k) => `<div class="thumb"><img alt="" src="${esc(photoUrl(p.sha256, p.blob))}">
    <button type="button" data-action="rm-photo" data-k="${k}" aria-label="${esc(t("delete"))}">✕</button></div>`).join("");
  return list + (d.busy ? `<p class="hint">${esc(t("processing"))}</p>` : "");
}

function counter() {
  const el = $("#counter");
  if (!el) return;
  const n = draft.description.length;
  el.textContent = `${n}/${MAX_DESCRIPTION}`;
  el.classList.toggle("over", n > MAX_DESCRIPTION);
}

function bindForm() {
  const ta = $("#description");
  ta?.addEventListener("input", () => { draft.description = ta.value; counter(); });
  $("#micro-grid")?.addEventListener("change", (e) => { draft.micro_grid = e.target.value; });
  $("#on-spot")?.addEventListener("change", (e) => { draft.on_spot = e.target.checked; });
  $("#photo-input")?.addEventListener("change", (e) => addPhotos(draft, [...e.target.files], "#thumbs"));
  counter();
}

async function addPhotos(d, files, target) {
  d.busy += files.length;
  $(target).innerHTML = thumbs(d);
  for (const f of files) {
    try {
      const p = await preparePhotoAsync(f);
      if (!d.photos.some((x) => x.sha256 === p.sha256)) d.photos.push(p);
    } catch (e) { toast(String(e.message || e)); }
    d.busy -= 1;
    const el = $(target);
    if (el) el.innerHTML = thumbs(d);
  }
  updateWhere();
}

function reportFromDraft(d) {
  const report = { id: d.caseId, category: d.category, risk_level: d.risk, description: d.description.trim(),
    captured_at: d.started, photos: d.photos.map((p) => p.sha256) };
  const loc = d.location || (geo.fix ? { lat: round6(geo.fix.lat), lon: round6(geo.fix.lon), accuracy_m: geo.fix.accuracy_m, crs: "wgs84" } : null);
  if (loc) report.location = loc;
  if (d.micro_grid) report.micro_grid_id = d.micro_grid;
  if (me?.role === "grid_worker" && d.on_spot) report.handled_on_spot = true;
  return report;
}
const round6 = (x) => Math.round(x * 1e6) / 1e6;

function checkDraft(d, report) {
  if (!d.category) return t("need_category");
  if (!d.risk) return t("need_risk");
  if (!report.location && !report.micro_grid_id) return t("need_where");
  if (d.busy) return t("processing");
  return null;
}

async function storePhotos(photos) {
  for (const p of photos) {
    const old = await store.getPhoto(p.sha256);
    if (!old) await store.putPhoto({ sha256: p.sha256, blob: p.blob, size: p.size, exif: p.exif || {}, state: "waiting", progress: 0, created_at: Date.now() });
  }
}

async function saveReport() {
  // an automatic micro-grid from the cached polygons, unless the user chose one
  if (!draft.micro_grid && geo.fix) {
    const f = await foundMicroGrid();
    if (f) draft.auto_micro_grid = f.properties.code;
  }
  const report = reportFromDraft(draft);
  if (!report.micro_grid_id && draft.auto_micro_grid) report.micro_grid_id = draft.auto_micro_grid;
  const problem = checkDraft(draft, report);
  if (problem) { $("#form-error").textContent = problem; return; }
  await storePhotos(draft.photos);
  const label = `${await categoryName(report.category)} · ${report.description.slice(0, 30)}`;
  const item = { ...newItem({ id: crypto.randomUUID(), opId: crypto.randomUUID(), seq: await store.nextSeq(), type: "report.create",
    body: { report }, photos: report.photos, now: Date.now(), label }), owner: me?.username };
  await enqueue(item);
  draft = null;
  toast(t("saved"));
  render();
}

// ------------------------------------------------------------------------------------------ outbox

async function renderOutbox() {
  const items = (await store.allItems()).sort((a, b) => b.seq - a.seq);
  const photos = new Map((await store.allPhotos()).map((p) => [p.sha256, p]));
  const groups = [
    ["grp_fix", items.filter((i) => i.state === STATES.NEEDS_FIXING), "fix"],
    ["grp_conflict", items.filter((i) => i.state === STATES.CONFLICT), "conflict"],
    ["grp_waiting", items.filter((i) => i.state === STATES.WAITING || i.state === STATES.SENDING), "waiting"],
    ["grp_sent", items.filter((i) => i.state === STATES.SENT || i.state === STATES.HELD), "sent"],
  ];
  view().innerHTML = `<h2>${esc(t("outbox_title"))}</h2>` + groups.map(([title, list, key]) =>
    `<section data-group="${key}"><h3>${esc(t(title))} (${list.length})</h3>${list.length ? list.map((i) => itemCard(i, photos)).join("") : `<p class="hint">${esc(t("empty"))}</p>`}</section>`).join("");
}

function itemCard(i, photos) {
  const r = i.result || {};
  const kind = i.type === "report.create" ? t("op_report") : i.type === "case.note" ? t("op_note") : `${t("op_transition")} · ${t(i.body.action) || i.body.action}`;
  const ph = (i.photos || []).map((sha) => {
    const p = photos.get(sha);
    const st = syncStatus.sending.has(sha) ? "sending" : p?.state || "sent";
    const frac = syncStatus.progress?.sha256 === sha ? syncStatus.progress.fraction : p?.progress || 0;
    return `<div class="meta">${esc(st === "sent" ? t("photo_sent") : st === "failed" ? t("photo_failed") : t("photo_waiting"))} · ${bytes(p?.size)}
      ${st === "sending" ? `<div class="progress" role="progressbar" aria-valuenow="${Math.round(frac * 100)}"><span style="width:${Math.round(frac * 100)}%"></span></div>` : ""}
      ${p?.error?.detail ? `<span class="err"> ${esc(p.error.detail)}</span>` : ""}</div>`;
  }).join("");
  let detail = "";
  if (i.state === STATES.NEEDS_FIXING) {
    detail = `<p class="err" data-testid="reject-detail">${esc(r.detail || r.code)} <code>${esc(r.code)}</code></p>`;
    if (r.errors) detail += `<ul class="errors">${Object.entries(r.errors).map(([f, m]) => `<li><code>${esc(f)}</code>: ${esc([].concat(m).join("; "))}</li>`).join("")}</ul>`;
    detail += `<div class="actions"><a class="btn" href="#fix/${esc(i.id)}">${esc(t("edit"))}</a>
      <button type="button" data-action="resend" data-id="${esc(i.id)}">${esc(t("resend"))}</button>
      <button type="button" class="danger" data-action="delete-item" data-id="${esc(i.id)}">${esc(t("delete"))}</button></div>`;
  } else if (i.state === STATES.CONFLICT) {
    detail = `<p>${esc(t("server_kept"))}</p><ul>${(r.conflicts || []).map((c) => `<li><code>${esc(c.field)}</code>: ${esc(t("server_value"))} <strong>${esc(fmt(c.server, c.field))}</strong>, ${esc(t("your_value"))} <strong>${esc(fmt(c.client, c.field))}</strong></li>`).join("")}</ul>
      <div class="actions"><button type="button" data-action="dismiss" data-id="${esc(i.id)}">${esc(t("dismiss"))}</button></div>`;
  } else if (i.state === STATES.WAITING && r.code) {
    detail = `<p class="meta">${esc(r.code)}${i.next_at > Date.now() ? ` · ${esc(ago(i.next_at - Date.now(), lang()))}` : ""}</p>`;
  }
  if (r.flags?.length) detail += `<p class="meta">${esc(t("flags"))}: ${esc(r.flags.join(", "))}</p>`;
  return `<div class="card" data-item="${esc(i.id)}" data-state="${esc(i.state)}">
    <div class="row"><strong class="grow">${esc(kind)}</strong>${itemChip(i.state)}</div>
    <div>${esc(i.label || "")}</div>
    <div class="meta">${new Date(i.created_at).toLocaleString(lang() === "en" ? "en" : "zh-CN")} · #${i.seq}</div>${ph}${detail}</div>`;
}

function fmt(v, field) {
  if (field === "state" && typeof v === "string") return t("s_" + v);
  if (field === "risk_level" && typeof v === "string") return t(v);
  return v && typeof v === "object" ? JSON.stringify(v) : String(v ?? "—");
}

async function renderFix(id) {
  const item = await store.getItem(id);
  if (!item) return go("#outbox");
  if (item.type === "report.create") {
    const r = item.body.report;
    const photos = [];
    for (const sha of r.photos || []) {
      const p = await store.getPhoto(sha);
      photos.push({ sha256: sha, blob: p?.blob, size: p?.size, exif: p?.exif });
    }
    if (!draft || draft.mode !== id) {
      draft = { mode: id, caseId: r.id, category: r.category, risk: r.risk_level, description: r.description || "", photos,
        micro_grid: r.micro_grid_id || "", on_spot: Boolean(r.handled_on_spot), started: r.captured_at, location: r.location || null, busy: 0 };
    }
    view().innerHTML = `<h2>${esc(t("edit"))}</h2>${itemCard(item, new Map())}` + (await reportForm(draft)) +
      `<div class="row"><button class="primary" type="button" data-action="save-fix" data-id="${esc(id)}">${esc(t("save_resend"))}</button>
       <a class="btn" href="#outbox">${esc(t("cancel"))}</a></div>`;
    bindForm();
    const where = $("#where");
    if (where) where.innerHTML = r.location ? `<p>${r.location.lat}, ${r.location.lon} ±${r.location.accuracy_m ?? "?"} m</p>` : "";
  } else {
    const note = item.body.note || {};
    view().innerHTML = `<h2>${esc(t("edit"))}</h2>${itemCard(item, new Map())}
      <label class="lbl" for="note-text">${esc(t("note"))}</label><textarea id="note-text">${esc(note.text || "")}</textarea>
      <div class="row" style="margin-top:10px"><button class="primary" type="button" data-action="save-fix" data-id="${esc(id)}">${esc(t("save_resend"))}</button>
      <a class="btn" href="#outbox">${esc(t("cancel"))}</a></div>`;
  }
}

async function saveFix(id) {
  const item = await store.getItem(id);
  if (!item) return;
  let body;
  let photos = item.photos;
  if (item.type === "report.create") {
    const report = reportFromDraft(draft);
    if (!draft.location) delete report.location;
    const problem = checkDraft(draft, report);
    if (problem) { $("#form-error").textContent = problem; return; }
    await storePhotos(draft.photos);
    body = { report };
    photos = report.photos;
  } else {
    const text = $("#note-text").value.trim();
    body = { ...item.body, note: { ...(item.body.note || { id: crypto.randomUUID(), photos: [] }), text } };
  }
  const seq = await store.nextSeq(); // taken up front; unused when the op stays the same
  const updated = editItem(item, body, { newOpId: () => crypto.randomUUID(), newSeq: () => seq, now: Date.now(), photos });
  await store.putItems([updated]);
  draft = null;
  requestSync("fix");
  toast(t("queued"));
  go("#outbox");
}

// ------------------------------------------------------------------------------------------ tasks

async function localCases() {
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

function effectiveState(c, pending) {
  let s = c.state;
  for (const i of pending) if (i.type === "case.transition") s = i.body.action === "start" ? "in_progress" : i.body.action === "resolve" ? "resolved" : s;
  return s;
}

async function caseRow(c, items) {
  const pending = pendingOnCase(items, c.id);
  const state = effectiveState(c, pending);
  return `<a class="card" href="#case/${esc(c.id)}" data-case="${esc(c.id)}">
    <div class="row"><strong class="grow">${esc(await categoryName(c.category))}</strong>${riskChip(c.risk_level)} ${stateChip(state)}</div>
    <div>${esc((c.description || "").slice(0, 60))}</div>
    <div class="meta">${esc(c.number || t("not_synced"))}${c.local ? ` · ${esc(t("st_" + c.item_state))}` : ""}${pending.length ? ` · ${esc(t("pending_ops", { n: pending.length }))}` : ""}</div></a>`;
}

async function renderTasks() {
  const { cases, items } = await localCases();
  const rank = { red: 0, yellow: 1, blue: 2 };
  cases.sort((a, b) => (rank[a.risk_level] ?? 3) - (rank[b.risk_level] ?? 3) || String(b.reported_at).localeCompare(String(a.reported_at)));
  const mine = cases.filter((c) => c.assignee && c.assignee === me?.username && OPEN.has(c.state));
  const grid = me?.role === "volunteer" ? [] : cases.filter((c) => !mine.includes(c) && !c.local && OPEN.has(c.state) && c.reporter !== me?.username);
  const reported = cases.filter((c) => c.reporter === me?.username);
  const section = async (key, list) => `<section data-group="${key}"><h3>${esc(t(key))} (${list.length})</h3>${list.length ? (await Promise.all(list.map((c) => caseRow(c, items)))).join("") : `<p class="hint">${esc(t("empty"))}</p>`}</section>`;
  view().innerHTML = `<h2>${esc(t("tasks_title"))}</h2>` + (await section("assigned_me", mine)) +
    (me?.role === "volunteer" ? "" : await section("grid_open", grid)) + (await section("my_reports", reported));
}

async function renderCase(id) {
  const { cases, items } = await localCases();
  const c = cases.find((x) => x.id === id);
  if (!c) return go("#tasks");
  const pending = pendingOnCase(items, c.id);
  const state = effectiveState(c, pending);
  const workflow = (await store.getCached("workflow")) || [];
  const can = (action) => !c.local && workflow.some((w) => w.state === state && w.action === action &&
    (w.roles.includes(me?.role) || (w.roles.includes("assignee") && c.assignee === me?.username)));
  view().innerHTML = `<p><a class="btn" href="#tasks">← ${esc(t("back"))}</a></p>
    <h2>${esc(await categoryName(c.category))} ${riskChip(c.risk_level)}</h2>
    <dl class="kv"><dt>${esc(t("number"))}</dt><dd>${esc(c.number || t("not_synced"))}</dd>
      <dt>${esc(t("state"))}</dt><dd data-testid="case-state">${stateChip(state)}${state !== c.state ? ` (${esc(t("not_synced"))})` : ""}</dd>
      <dt>${esc(t("micro_grid"))}</dt><dd>${esc(c.micro_grid_id || "—")}</dd>
      <dt>${esc(t("reported_at"))}</dt><dd>${esc(c.reported_at ? new Date(c.reported_at).toLocaleString(lang() === "en" ? "en" : "zh-CN") : "")}</dd>
      ${c.flags?.length ? `<dt>${esc(t("flags"))}</dt><dd>${esc(c.flags.join(", "))}</dd>` : ""}</dl>
    <p>${esc(c.description || "")}</p>
    <div class="thumbs" id="case-photos"></div>
    ${pending.length ? `<p class="warn">${esc(t("pending_ops", { n: pending.length }))}</p>` : ""}
    <div class="actions row" style="margin:12px 0">
      ${can("start") ? `<button type="button" data-action="start" data-id="${esc(c.id)}">${esc(t("start"))}</button>` : ""}
    </div>
    ${c.local ? "" : `<form id="note-form" class="card">
      <label class="lbl" for="note-text">${esc(t("note"))}</label><textarea id="note-text"></textarea>
      <label class="btn filebtn" style="margin-top:8px">${esc(t("after_photos"))}<input type="file" id="note-photos" accept="image/*" capture="environment" multiple></label>
      <div class="thumbs" id="note-thumbs"></div><p class="err" id="form-error"></p>
      <div class="row" style="margin-top:8px">
        <button type="button" data-action="note" data-id="${esc(c.id)}">${esc(t("add_note"))}</button>
        ${can("resolve") ? `<button type="button" class="primary" style="width:auto" data-action="resolve" data-id="${esc(c.id)}">${esc(t("resolve"))}</button>` : ""}
      </div></form>`}`;
  if (!draft || draft.mode !== `note:${c.id}`) draft = { mode: `note:${c.id}`, photos: [], busy: 0, description: "" };
  if ($("#note-thumbs")) $("#note-thumbs").innerHTML = thumbs(draft);
  $("#note-photos")?.addEventListener("change", (e) => addPhotos(draft, [...e.target.files], "#note-thumbs"));
  loadCasePhotos(c);
}

async function loadCasePhotos(c) {
  const box = $("#case-photos");
  for (const p of (c.photos || []).slice(0, 8)) {
    const sha = p.sha256;
    const local = await store.getPhoto(sha);
    let url = local?.blob ? photoUrl(sha, local.blob) : photoUrls.get(sha);
    if (!url && navigator.onLine) {
      try {
        const { api } = await import("./api.js");
        const res = await api(`/api/v1/media/${sha}?variant=thumb`);
        url = photoUrl(sha, await res.blob());
      } catch { /* not there yet, or offline */ }
    }
    if (url && box?.isConnected) box.insertAdjacentHTML("beforeend", `<div class="thumb"><img alt="${esc(p.role)}" src="${esc(url)}"></div>`);
  }
}

async function caseOp(id, action) {
  const c = (await localCases()).cases.find((x) => x.id === id);
  if (!c) return;
  const text = $("#note-text")?.value.trim() || "";
  const role = action === "resolve" ? "rectification" : "evidence";
  const photos = (draft?.photos || []).map((p) => ({ sha256: p.sha256, role }));
  if (draft?.busy) { $("#form-error").textContent = t("processing"); return; }
  const note = text || photos.length ? { id: crypto.randomUUID(), text, photos, captured_at: isoWithOffset(new Date()) } : null;
  let type, body;
  if (action === "note") {
    if (!note) { $("#form-error").textContent = t("resolve_needs"); return; }
    type = "case.note"; body = { case_id: c.id, note };
  } else {
    if (action === "resolve" && !note) { $("#form-error").textContent = t("resolve_needs"); return; }
    type = "case.transition"; body = { case_id: c.id, base_version: c.version, action };
    if (note) body.note = note;
  }
  await storePhotos(draft?.photos || []);
  const item = { ...newItem({ id: crypto.randomUUID(), opId: crypto.randomUUID(), seq: await store.nextSeq(), type, body,
    photos: photos.map((p) => p.sha256), now: Date.now(), label: `${c.number || ""} ${await categoryName(c.category)} · ${text.slice(0, 30)}` }),
    owner: me?.username };
  draft = null;
  await enqueue(item);
  toast(t("queued"));
  render();
}

// ------------------------------------------------------------------------------------------ map

let leaflet = null;
function loadLeaflet() {
  if (window.L) return Promise.resolve(window.L);
  if (!leaflet) {
    leaflet = new Promise((resolve, reject) => {
      const css = document.createElement("link");
      css.rel = "stylesheet"; css.href = "/vendor/leaflet/leaflet.css";
      document.head.append(css);
      const s = document.createElement("script");
      s.src = "/vendor/leaflet/leaflet.js";
      s.onload = () => resolve(window.L);
      s.onerror = reject;
      document.head.append(s);
    });
  }
  return leaflet;
}

const STATE_COLOURS = { reported: "#6a1b9a", accepted: "#0b5394", assigned: "#b71c1c", in_progress: "#e65100", resolved: "#1b5e20",
  returned: "#4e342e", closed: "#424242", rejected: "#424242", merged: "#424242" };

async function renderMap() {
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

// ------------------------------------------------------------------------------------------ me

async function renderMe() {
  const s = await session();
  const u = s?.user || {};
  const persisted = await navigator.storage?.persisted?.();
  view().innerHTML = `<h2>${esc(t("me_title"))}</h2>
    <div class="card"><dl class="kv"><dt>${esc(t("username"))}</dt><dd>${esc(u.display_name || "")} (${esc(u.username || "")})</dd>
      <dt>&nbsp;</dt><dd>${esc(t("role_" + u.role))} · ${esc(u.region_name || u.region || "")}</dd>
      <dt>${esc(t("device"))}</dt><dd><code>${esc(await store.deviceId())}</code></dd></dl>
      <p class="meta">${esc(persisted ? t("persist_ok") : t("persist_no"))}</p></div>
    <h3>${esc(t("language"))}</h3>
    <div class="row"><button type="button" data-action="lang" data-lang="zh" aria-pressed="${lang() !== "en"}">中文</button>
      <button type="button" data-action="lang" data-lang="en" aria-pressed="${lang() === "en"}">English</button></div>
    <h3><label for="tiles">${esc(t("tile_url"))}</label></h3>
    <input type="url" id="tiles" value="${esc(localStorage.getItem("gridcase.tiles") || "")}" placeholder="https://…/{z}/{x}/{y}.png">
    <p class="hint">${esc(t("tile_hint"))}</p>
    <button type="button" data-action="save-tiles">${esc(t("save"))}</button>
    ${review.isReviewer(u) ? `<h3>${esc(t("shortcuts"))}</h3><div class="row"><a class="btn" href="#capture">${esc(t("capture_title"))}</a>
      <a class="btn" href="#outbox">${esc(t("outbox_title"))}</a><a class="btn" href="#tasks">${esc(t("tasks_title"))}</a></div>` : ""}
    <h3>&nbsp;</h3>
    <div class="row"><button type="button" data-action="refresh-data">${esc(t("refresh_data"))}</button>
      <button type="button" class="danger" data-action="logout">${esc(t("logout"))}</button></div>`;
}

// ------------------------------------------------------------------------------------------ actions

async function onAction(e) {
  const el = e.target.closest("[data-action]");
  if (!el) return;
  const a = el.dataset.action;
  if (a === "sync") {
    const r = await syncNow("manual");
    if (r?.error instanceof Offline || !navigator.onLine) toast(t("offline"));
    render();
  } else if (a === "cat") { draft.category = el.dataset.code; setPressed(el); }
  else if (a === "risk") { draft.risk = el.dataset.risk; setPressed(el); }
  else if (a === "rm-photo") { draft.photos.splice(Number(el.dataset.k), 1); $("#thumbs").innerHTML = thumbs(draft); }
  else if (a === "photo-gps") {
    const p = draft.photos.find((x) => x.exif?.lat != null);
    if (p) { geo.fix = { lat: p.exif.lat, lon: p.exif.lon, accuracy_m: 50, at: Date.now() }; updateWhere(); }
  } else if (a === "save-report") saveReport();
  else if (a === "save-fix") saveFix(el.dataset.id);
  else if (a === "resend") {
    const i = await store.getItem(el.dataset.id);
    if (i) { await store.putItems([resend(i, Date.now())]); requestSync("resend"); render(); }
  } else if (a === "delete-item") {
    if (confirm(t("confirm_delete"))) {
      const gone = await store.getItem(el.dataset.id);
      await store.deleteItem(el.dataset.id);
      await prunePhotos(null, gone?.photos || []);
      render();
    }
  } else if (a === "dismiss") {
    await store.deleteItem(el.dataset.id);
    await prunePhotos();
    render();
  } else if (a === "start" || a === "resolve" || a === "note") caseOp(el.dataset.id, a);
  else if (a === "lang") { setLang(el.dataset.lang); render(); }
  else if (a === "save-tiles") { localStorage.setItem("gridcase.tiles", $("#tiles").value.trim()); toast(t("save")); }
  else if (a === "refresh-data") {
    try { await refreshReference(true); await pull(); toast("OK"); } catch (x) { toast(x instanceof Offline ? t("offline") : x.message); }
  } else if (a === "logout") {
    const pending = outboxSummary(await store.allItems()).pending;
    if (pending && !confirm(t("logout_unsent", { n: pending }))) return;
    await logout();
    me = null;
    go("#login");
  } else if (a === "update" && updateReg?.waiting) {
    sessionStorage.setItem("gridcase.updating", "1");
    updateReg.waiting.postMessage({ type: "SKIP_WAITING" });
  } else await review.onAction(el, a);
}

function setPressed(el) {
  for (const b of el.parentElement.querySelectorAll("[aria-pressed]")) b.setAttribute("aria-pressed", String(b === el));
}

// ------------------------------------------------------------------------------------------ boot

async function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  try {
    const reg = await navigator.serviceWorker.register("/sw.js", { scope: "/", type: "module" });
    const offer = () => { updateReg = reg; statusBar(); };
    if (reg.waiting && navigator.serviceWorker.controller) offer();
    reg.addEventListener("updatefound", () => {
      const w = reg.installing;
      w?.addEventListener("statechange", () => { if (w.state === "installed" && navigator.serviceWorker.controller) offer(); });
    });
  } catch (e) { console.warn("service worker:", e); }
  navigator.serviceWorker.addEventListener("message", (e) => { if (e.data?.type === "sync") requestSync("background-sync"); });
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    // Reload only when the user asked for the update (not on the first install's clients.claim()).
    if (sessionStorage.getItem("gridcase.updating")) { sessionStorage.removeItem("gridcase.updating"); location.reload(); }
  });
}

async function boot() {
  setLang(lang());
  review.setContext({ toast, go, render, loadLeaflet });
  document.addEventListener("click", onAction);
  window.addEventListener("hashchange", () => { window.scrollTo(0, 0); render(); });
  window.addEventListener("online", () => { statusBar(); requestSync("online"); });
  window.addEventListener("offline", statusBar);
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") requestSync("visible"); });
  onChange(onSyncChange);
  navigator.storage?.persist?.().catch(() => {});
  await store.deviceId();
  await render();
  registerServiceWorker();
  requestSync("start", 300);
  setInterval(statusBar, 30_000);
}

boot().catch((e) => { console.error(e); view().textContent = String(e); });
window.gridcase = { store, syncNow, HttpError };
