// Talking to the API: bearer tokens kept in IndexedDB, refreshed shortly before they expire, refreshed and
// resent once on 401 token_expired. A refresh that fails (expired, revoked) asks for a new login; the
// outbox stays untouched meanwhile. Refreshes are serialised across tabs: refresh tokens rotate, and an
// old one presented twice revokes the device.
import { delMeta, deviceId, getMeta, setMeta } from "./db.js";
import { parseRetryAfter } from "./core/outbox.js";

const EARLY_MS = 60_000; // refresh this long before the access token's expiry (slow networks, skewed clocks)

export class Offline extends Error { constructor(m = "offline") { super(m); this.name = "Offline"; } }
export class LoginRequired extends Error { constructor(code = "login_required") { super(code); this.name = "LoginRequired"; this.code = code; } }
export class HttpError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.name = "HttpError"; this.status = status; this.problem = problem || {}; this.retryAfter = retryAfter;
  }
}

export function lang() {
  // the service worker has no localStorage: it speaks the default language
  return (typeof localStorage !== "undefined" && localStorage.getItem("gridcase.lang")) || "zh";
}
function langHeader() { return lang() === "en" ? "en" : "zh-CN"; }

async function readProblem(res) {
  try { return await res.json(); } catch { return { code: `http_${res.status}` }; }
}

function retryAfterOf(res) { return parseRetryAfter(res.headers.get("Retry-After")); }

export async function session() { return getMeta("session"); }

function store(tokens, previous) {
  const s = { ...(previous || {}), access_token: tokens.access_token, refresh_token: tokens.refresh_token,
    expires_at: Date.now() + (tokens.expires_in || 900) * 1000, user: tokens.user || previous?.user,
    login_required: false };
  return setMeta("session", s).then(() => s);
}

async function raw(path, { method = "GET", body, token, headers = {} } = {}) {
  const h = { "Accept-Language": langHeader(), ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  const bytes = body instanceof Blob || (typeof FormData !== "undefined" && body instanceof FormData);
  if (body !== undefined && !bytes) h["Content-Type"] = "application/json";
  try {
    return await fetch(path, { method, headers: h, body: body === undefined ? undefined : bytes ? body : JSON.stringify(body) });
  } catch {
    throw new Offline();
  }
}

/** Log in on this device. Another user than last time starts with a clean working set (cases, cursor,
 * cached reference data); the outbox stays: each op waits for its own user. */
export async function login(username, password) {
  return startSession("/api/v1/auth/login", { username, password });
}

/** The first login of a new (or reset) account: its one-time activation code sets the password. */
export async function activate(username, code, password) {
  return startSession("/api/v1/auth/activate", { username, code, password });
}

async function startSession(path, body) {
  const res = await raw(path, { method: "POST", body: { ...body, device_id: await deviceId() } });
  if (!res.ok) throw new HttpError(res.status, await readProblem(res), retryAfterOf(res));
  const tokens = await res.json();
  const last = await getMeta("last_user");
  if (last && last !== tokens.user?.username) await forgetWorkingSet();
  await setMeta("last_user", tokens.user?.username);
  return store(tokens, null);
}

async function forgetWorkingSet() {
  const { clearCases, delMeta, setCached } = await import("./db.js");
  await clearCases();
  for (const key of ["cursor", "reference_at", "pulled_at"]) await delMeta(key);
  await setCached("geojson", null);
  navigator.serviceWorker?.controller?.postMessage({ type: "CLEAR_API_CACHE" });
}

export async function logout() {
  const s = await session();
  if (s?.access_token) { try { await raw("/api/v1/auth/logout", { method: "POST", token: s.access_token }); } catch { /* offline: the server forgets it at expiry */ } }
  await setMeta("session", null);
  navigator.serviceWorker?.controller?.postMessage({ type: "CLEAR_API_CACHE" });
}

async function markLoginRequired(code) {
  const s = await session();
  if (s) await setMeta("session", { ...s, access_token: null, refresh_token: null, login_required: true });
  throw new LoginRequired(code);
}

async function refreshLocked(staleAccess) {
  const s = await session();
  if (!s || !s.refresh_token) throw new LoginRequired();
  // Another tab refreshed while we waited for the lock: use its tokens.
  if (s.access_token && s.access_token !== staleAccess && s.expires_at - Date.now() > EARLY_MS) return s;
  const res = await raw("/api/v1/auth/refresh", { method: "POST", token: s.refresh_token });
  if (res.status === 401 || res.status === 403) {
    const p = await readProblem(res);
    return markLoginRequired(p.code || "token_expired");
  }
  if (!res.ok) throw new HttpError(res.status, await readProblem(res), retryAfterOf(res));
  return store(await res.json(), s);
}

/** Rotate the tokens now (once across all tabs). */
export async function refresh(staleAccess) {
  if (navigator.locks) return navigator.locks.request("gridcase-auth", () => refreshLocked(staleAccess));
  return refreshLocked(staleAccess);
}

/** A usable access token, refreshed first when it expires within a minute. */
export async function accessToken() {
  const s = await session();
  if (!s || s.login_required || !s.refresh_token) throw new LoginRequired();
  if (!s.access_token || s.expires_at - Date.now() < EARLY_MS) return (await refresh(s.access_token)).access_token;
  return s.access_token;
}

/** Call the API with the bearer token; on 401 token_expired refresh and send once more (ops are idempotent). */
export async function api(path, { method = "GET", body, headers } = {}) {
  let token = await accessToken();
  let res = await raw(path, { method, body, token, headers });
  if (res.status === 401) {
    const p = await readProblem(res);
    if (p.code !== "token_expired" && p.code !== "token_invalid") return markLoginRequired(p.code);
    token = (await refresh(token)).access_token;
    res = await raw(path, { method, body, token, headers });
    if (res.status === 401) return markLoginRequired((await readProblem(res)).code);
  }
  if (!res.ok && res.status !== 304) throw new HttpError(res.status, await readProblem(res), retryAfterOf(res));
  return res;
}

export async function apiJson(path, opts) { return (await api(path, opts)).json(); }

/** In the service worker (no XMLHttpRequest): the same PUT, without progress. */
async function putWithFetch(sha256, blob, token) {
  let res;
  try {
    res = await fetch(`/api/v1/media/${sha256}`, { method: "PUT", body: blob, headers: {
      Authorization: `Bearer ${token}`, "Content-Type": "application/octet-stream", "Accept-Language": langHeader() } });
  } catch { throw new Offline(); }
  const body = await res.json().catch(() => null);
  return { status: res.status, body, retryAfter: retryAfterOf(res) };
}

/** PUT a photo as the raw body with upload progress (XMLHttpRequest: fetch has no upload progress). */
export async function putPhoto(sha256, blob, onProgress) {
  const send = typeof XMLHttpRequest === "undefined" ? (token) => putWithFetch(sha256, blob, token) : (token) => new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", `/api/v1/media/${sha256}`);
    xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("Accept-Language", langHeader());
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let p = null;
      try { p = JSON.parse(xhr.responseText); } catch { /* empty */ }
      resolve({ status: xhr.status, body: p, retryAfter: parseRetryAfter(xhr.getResponseHeader("Retry-After")) });
    };
    xhr.onerror = () => reject(new Offline());
    xhr.ontimeout = () => reject(new Offline("timeout"));
    xhr.send(blob);
  });
  let token = await accessToken();
  let r = await send(token);
  if (r.status === 401 && (r.body?.code === "token_expired" || r.body?.code === "token_invalid")) {
    token = (await refresh(token)).access_token;
    r = await send(token);
  }
  if (r.status === 401) return markLoginRequired(r.body?.code);
  if (r.status >= 200 && r.status < 300) return r.body;
  throw new HttpError(r.status, r.body, r.retryAfter);
}

// Large photos (a resize that failed, a PNG) go through tus 1.0.0 in chunks: a phone that loses its network
// at 60 % asks the server how far it got (HEAD) and sends only the rest, even after the app restarts.
export const TUS_THRESHOLD = 1024 * 1024;
const TUS_CHUNK = 256 * 1024;
const TUS = { "Tus-Resumable": "1.0.0" };

function b64(bytes) { let s = ""; for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b); return btoa(s); }

export async function tusPhoto(sha256, blob, onProgress) {
  const key = `tus:${sha256}`;
  let path = await getMeta(key);
  let offset = 0;
  if (path) {
    const head = await rawTus(path, { method: "HEAD" });
    if (head.ok) offset = Number(head.headers.get("Upload-Offset")) || 0;
    else { path = null; await delMeta(key); }
  }
  if (!path) {
    const created = await rawTus("/api/v1/uploads/", { method: "POST", headers: {
      "Upload-Length": String(blob.size), "Upload-Metadata": `sha256 ${btoa(sha256)}` } });
    if (!created.ok) throw new HttpError(created.status, await created.json().catch(() => null));
    path = new URL(created.headers.get("Location"), location.href).pathname;
    await setMeta(key, path);
  }
  while (offset < blob.size) {
    const chunk = await blob.slice(offset, offset + TUS_CHUNK).arrayBuffer();
    const digest = await crypto.subtle.digest("SHA-256", chunk);
    const res = await rawTus(path, { method: "PATCH", body: chunk, headers: {
      "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream",
      "Upload-Checksum": `sha256 ${b64(digest)}` } });
    if (res.status === 409 || res.status === 460) {  // out of step, or a chunk damaged on the way: ask again
      offset = Number((await rawTus(path, { method: "HEAD" })).headers.get("Upload-Offset")) || 0;
      continue;
    }
    if (!res.ok) {
      if (res.status === 404 || res.status === 410) await delMeta(key);
      throw new HttpError(res.status, await res.json().catch(() => null), retryAfterOf(res));
    }
    offset = Number(res.headers.get("Upload-Offset")) || offset + chunk.byteLength;
    if (onProgress) onProgress(offset / blob.size);
  }
  await delMeta(key);
  return true;
}

async function rawTus(path, { method, body, headers = {} }) {
  const send = async (token) => {
    try {
      return await fetch(path, { method, body, headers: { ...TUS, ...headers, Authorization: `Bearer ${token}`,
        "Accept-Language": langHeader() } });
    } catch { throw new Offline(); }
  };
  let token = await accessToken();
  let res = await send(token);
  if (res.status === 401) {
    token = (await refresh(token)).access_token;
    res = await send(token);
  }
  if (res.status === 401) return markLoginRequired("token_expired");
  return res;
}
