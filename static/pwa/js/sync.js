// The sync engine: ops first in batches of ≤ 50 in seq order, then photos, per-op results applied to the
// outbox, back-off on retry/429/5xx/no network, then a pull of my cases. One sync at a time across tabs
// (Web Locks); other tabs hear about changes over a BroadcastChannel.
import * as store from "./db.js";
import { api, apiJson, HttpError, LoginRequired, Offline, putPhoto, session, TUS_THRESHOLD, tusPhoto } from "./api.js";
import {
  applyResults, expired, failBatch, nextWake, outboxSummary, pickBatch, recover, rejectBatch,
  STATES, toOp,
} from "./core/outbox.js";
import { backoffMs, syncSteps } from "./core/outbox.js";
import { isoWithOffset } from "./core/time.js";

const channel = "BroadcastChannel" in self ? new BroadcastChannel("gridcase") : null;
const listeners = new Set();
let timer = null;
let running = false;
let photoFailures = 0;

export const status = { phase: "idle", last_ok: null, last_error: null, progress: null, login_required: false, sending: new Set() };

export function onChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }
function emit(kind = "change", local = false) {
  for (const fn of listeners) { try { fn(kind, status); } catch (e) { console.error(e); } }
  if (!local && channel) channel.postMessage({ kind });
}
channel?.addEventListener("message", (e) => emit(e.data?.kind || "change", true));

function setPhase(phase, extra = {}) { Object.assign(status, { phase }, extra); emit("status", true); }

/** Queue one op (already built as an outbox item) and try to send it now. */
export async function enqueue(item) {
  await store.putItems([item]);
  emit();
  requestSync("enqueue");
  return item;
}

/** Ask for a sync soon (debounced); also registers a Background Sync so the SW wakes us later. */
export function requestSync(reason = "manual", delay = 50) {
  clearTimeout(timer);
  timer = setTimeout(() => syncNow(reason), delay);
  registerBackgroundSync();
}

async function registerBackgroundSync() {
  try {
    const reg = await navigator.serviceWorker?.ready;
    if (reg && "sync" in reg) await reg.sync.register("gridcase-outbox");
  } catch { /* not supported, or permission denied: the online/visibility triggers remain */ }
}

function schedule(items) {
  const wake = nextWake(items);
  if (wake === null) return;
  clearTimeout(timer);
  timer = setTimeout(() => syncNow("backoff"), Math.max(500, wake - Date.now()));
}

/** Run one full sync unless another tab or this one is already syncing. Never throws. */
export async function syncNow(reason = "manual") {
  if (running) return { skipped: true };
  if (navigator.onLine === false && reason !== "manual") return { skipped: true, offline: true };
  const run = () => doSync(reason);
  if (navigator.locks) {
    return navigator.locks.request("gridcase-sync", { ifAvailable: true }, (lock) => (lock ? run() : { skipped: true }));
  }
  return run();
}

async function doSync(reason) {
  running = true;
  setPhase("syncing", { last_error: null });
  try {
    const s = await session();
    if (!s || s.login_required) { setPhase("idle", { login_required: Boolean(s?.login_required) }); return { login_required: true }; }
    const stale = recover(await store.allItems(), Date.now());
    if (stale.length) await store.putItems(stale);
    const steps = { ops: pushOps, photos: uploadPhotos, pull, reference: () => refreshReference(), tidy };
    for (const step of syncSteps()) await steps[step]();
    setPhase("idle", { last_ok: Date.now(), login_required: false, progress: null });
    return { ok: true };
  } catch (e) {
    if (e instanceof LoginRequired) setPhase("idle", { login_required: true, last_error: "login_required" });
    else if (e instanceof Offline) setPhase("idle", { last_error: "offline" });
    else { console.error(e); setPhase("idle", { last_error: e.problem?.code || e.message || String(e) }); }
    return { error: e };
  } finally {
    running = false;
    schedule(await store.allItems());
    emit();
  }
}

/** Photos follow the ops: ask which the server lacks, PUT those (with progress), mark the rest sent. Every photo
 * not yet known to be on the server is tried, also those of ops already sent (their case lists them as
 * missing until they land). Up to UPLOAD_CONCURRENCY PUTs run at once (the server decodes each photo: on a
 * weak network the pipe is the limit, over Wi-Fi the server's cores are). A photo being sent is marked in
 * memory (status.sending), not rewritten in IndexedDB: each rewrite of a record copies its Blob. */
const UPLOAD_CONCURRENCY = 3;

async function uploadPhotos() {
  const wanted = (await store.allPhotos())
    .filter((p) => p.state !== "sent" && p.state !== "failed" && (p.next_at || 0) <= Date.now())
    .sort((a, b) => (a.created_at || 0) - (b.created_at || 0));
  if (!wanted.length) return;
  const missing = new Set();
  for (let i = 0; i < wanted.length; i += 200) {
    const r = await apiJson("/api/v1/media/missing", { method: "POST", body: { hashes: wanted.slice(i, i + 200).map((p) => p.sha256) } });
    for (const h of r.missing || []) missing.add(h);
  }
  const queue = [];
  for (const p of wanted) {
    if (missing.has(p.sha256)) queue.push(p);
    else await store.putPhoto({ ...p, state: "sent", progress: 1, error: null });
  }
  let stop = null; // Offline or LoginRequired: no more uploads this round
  const uploaded = []; // marked sent in batches: a photo marked late is only asked about again (media/missing)
  const flush = async () => { if (uploaded.length) await store.putPhotos(uploaded.splice(0)); };
  const worker = async () => {
    while (!stop && queue.length) {
      try {
        const p = queue.shift();
        if (await uploadOne(p)) uploaded.push({ ...p, state: "sent", progress: 1, error: null });
        if (uploaded.length >= 10) await flush();
      } catch (e) { stop = stop || e; }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(UPLOAD_CONCURRENCY, queue.length) }, worker));
  } finally {
    await flush();
    status.progress = null;
  }
  if (stop) throw stop;
}

/** PUT one photo; true when it is on the server. A refused or failed one is recorded with its error. */
async function uploadOne(p) {
  status.sending.add(p.sha256);
  emit("photo", true);
  try {
    let last = 0;
    const progress = (f) => {
      status.progress = { sha256: p.sha256, fraction: f };
      if (f - last > 0.05 || f === 1) { last = f; emit("progress", true); }
    };
    if (p.blob.size > TUS_THRESHOLD) await tusPhoto(p.sha256, p.blob, progress);
    else await putPhoto(p.sha256, p.blob, progress);
    photoFailures = 0;
    return true;
  } catch (e) {
    if (e instanceof LoginRequired) throw e;
    const fatal = e instanceof HttpError && e.status >= 400 && e.status < 500 && e.status !== 429 && e.status !== 408;
    photoFailures += 1;
    await store.putPhoto({ ...p, state: fatal ? "failed" : "waiting", progress: 0,
      error: e instanceof HttpError ? { status: e.status, code: e.problem.code, detail: e.problem.detail } : { code: "offline" },
      next_at: fatal ? 0 : Date.now() + backoffMs(photoFailures, { retryAfterS: e.retryAfter }) });
    if (e instanceof Offline) throw e;
    // A refused photo never blocks the text: the report goes anyway and lists it as missing.
    return false;
  } finally {
    status.sending.delete(p.sha256);
  }
}

async function pushOps() {
  const device_id = await store.deviceId();
  for (let round = 0; round < 100; round++) {
    const items = await store.allItems();
    const user = (await session())?.user?.username;
    // ops queued by another user of this phone wait for that user's login
    const batch = pickBatch(items.filter((i) => !i.owner || i.owner === user), Date.now());
    if (!batch.length) return;
    await store.putItems(batch.map((i) => ({ ...i, state: STATES.SENDING })));
    emit();
    const envelope = { device_id, client_time: isoWithOffset(new Date()), outbox: outboxSummary(items), ops: batch.map(toOp) };
    let res;
    try {
      res = await api("/api/v1/sync", { method: "POST", body: envelope });
    } catch (e) {
      if (e instanceof HttpError && e.status >= 400 && e.status < 500 && e.status !== 429 && e.status !== 408 && e.status !== 413) {
        await store.putItems(rejectBatch(batch, Date.now(), e.problem));
        continue;
      }
      if (e instanceof HttpError && e.status === 413 && batch.length > 1) {
        // Too big as a whole: send the first op alone next round, the rest follow.
        await store.putItems(batch.map((i, k) => ({ ...i, state: STATES.WAITING, next_at: k ? Date.now() + 1 : 0 })));
        continue;
      }
      const retryAfterS = e instanceof HttpError ? e.retryAfter : null;
      await store.putItems(e instanceof LoginRequired ? batch.map((i) => ({ ...i, state: STATES.WAITING }))
        : failBatch(batch, Date.now(), { retryAfterS, error: e instanceof Offline ? "offline" : e.problem?.code }));
      throw e;
    }
    const answer = await res.json();
    const updated = applyResults(batch, answer.results, Date.now());
    await store.putItems(updated);
    for (const r of answer.results || []) {
      // the server lacks a photo we thought it had (lost, or refused later): send it again
      for (const sha of r.missing_photos || []) {
        const p = await store.getPhoto(sha);
        if (p?.blob && p.state === "sent") await store.putPhoto({ ...p, state: "waiting", next_at: 0 });
      }
    }
    if (answer.clock_skew_s != null) await store.setMeta("clock_skew_s", answer.clock_skew_s);
    emit();
    if (updated.some((i) => i.state === STATES.WAITING)) return; // a retry: wait for its back-off
  }
}

/** Pull my cases changed since the stored cursor; tombstones remove cases that left my working set. */
export async function pull() {
  let cursor = (await store.getMeta("cursor")) || "";
  for (let page = 0; page < 50; page++) {
    const r = await apiJson(`/api/v1/sync/changes?cursor=${encodeURIComponent(cursor)}&limit=200`);
    for (const ch of r.changes || []) {
      if (ch.case) await store.putCase({ ...ch.case, pulled_at: Date.now() });
      else if (ch.tombstone) await store.deleteCase(ch.tombstone.id);
    }
    cursor = r.cursor;
    await store.setMeta("cursor", cursor);
    if (!r.has_more) break;
  }
  await store.setMeta("pulled_at", Date.now());
}

/** Categories, workflow and my region's micro-grid polygons, kept for offline use (ETag for polygons). */
export async function refreshReference(force = false) {
  const last = (await store.getMeta("reference_at")) || 0;
  if (!force && Date.now() - last < 6 * 3600 * 1000 && (await store.getCached("categories"))) return;
  const s = await session();
  const region = s?.user?.region;
  await store.setCached("categories", await apiJson("/api/v1/categories"));
  await store.setCached("workflow", await apiJson("/api/v1/workflow"));
  if (region) {
    const old = await store.getCached("geojson");
    const headers = old?.etag && old.region === region ? { "If-None-Match": old.etag } : {};
    const res = await api(`/api/v1/regions/${encodeURIComponent(region)}/geojson?level=micro_grid`, { headers });
    if (res.status !== 304) await store.setCached("geojson", { region, etag: res.headers.get("ETag"), data: await res.json() });
  }
  await store.setMeta("reference_at", Date.now());
  emit("reference");
}

async function tidy() {
  const items = await store.allItems();
  const gone = expired(items, Date.now());
  for (const i of gone) await store.deleteItem(i.id);
  await prunePhotos(items.filter((i) => !gone.includes(i)));
}

/** Drop photo blobs no outbox item refers to any more once they are uploaded (or refused). A photo still
 * to upload is kept even after its op was sent: its case waits for it. `hashes` (the photos of an item the
 * user deleted) are dropped unsent too, unless another item needs them. */
export async function prunePhotos(items, hashes = []) {
  items = items || (await store.allItems());
  const still = new Set(items.flatMap((i) => i.photos || []));
  const dropped = new Set(hashes);
  for (const p of await store.allPhotos()) {
    if (still.has(p.sha256)) continue;
    if (p.state === "sent" || p.state === "failed" || dropped.has(p.sha256)) await store.deletePhoto(p.sha256);
  }
}
