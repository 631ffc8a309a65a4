// Gridcase service worker (hand-written; see README "Field app" for why not Workbox).
// - a versioned cache holding the app shell, precached at install: the app opens with no network;
// - cache-first for the shell (the reviewer console's files are kept on first use, not precached),
//   network-only for the API, except a few GETs (categories, workflow, region polygons, pulled changes) that
//   fall back to their last good copy when offline;
// - a new version waits until the page asks it to take over (the update prompt), then claims the clients;
// - Background Sync: wakes an open page to send its outbox.
// A module worker: with no page open, a Background Sync event sends the outbox from here, with the page's own
// sync code (one implementation; the same cross-tab lock).
import { syncNow } from "/js/sync.js";

const VERSION = "gridcase-shell-v8";
const API_CACHE = "gridcase-api-v1";
const SHELL = [
  "/", "/index.html", "/manifest.webmanifest", "/css/app.css",
  "/js/main.js", "/js/router.js", "/js/shell.js", "/js/ui.js", "/js/leaflet.js",
  "/js/api.js", "/js/db.js", "/js/i18n.js", "/js/sync.js", "/js/watch.js", "/js/photo.js", "/js/photo-worker.js",
  "/js/field/login.js", "/js/field/capture.js", "/js/field/form.js", "/js/field/location.js", "/js/field/data.js",
  "/js/field/tasks.js", "/js/field/case.js", "/js/field/map.js", "/js/field/outbox.js", "/js/field/fix.js", "/js/field/me.js",
  "/js/core/outbox.js", "/js/core/geo.js", "/js/core/exif.js", "/js/core/time.js",
  "/vendor/idb/index.js", "/vendor/leaflet/leaflet.js", "/vendor/leaflet/leaflet.css",
  "/vendor/leaflet/images/marker-icon.png", "/vendor/leaflet/images/marker-icon-2x.png",
  "/vendor/leaflet/images/marker-shadow.png", "/vendor/leaflet/images/layers.png", "/vendor/leaflet/images/layers-2x.png",
  "/icons/icon-192.png", "/icons/icon-512.png", "/icons/icon-maskable-512.png",
];
// The reviewer and admin consoles (and the charts) are not precached: a field phone never downloads it. A reviewer's
// browser keeps each file in the shell cache the first time it is fetched, so the console opens offline too.
const ON_FIRST_USE = [/^\/js\/review\//, /^\/js\/admin\//, /^\/js\/core\/charts\.js$/];
const CACHED_API = [/^\/api\/v1\/categories$/, /^\/api\/v1\/workflow$/, /^\/api\/v1\/regions\/[^/]+\/geojson$/, /^\/api\/v1\/sync\/changes$/];

self.addEventListener("install", (event) => {
  // cache: "reload" bypasses the HTTP cache so a new version never precaches stale files
  event.waitUntil(caches.open(VERSION).then((c) => c.addAll(SHELL.map((u) => new Request(u, { cache: "reload" })))));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key !== VERSION && key !== API_CACHE) await caches.delete(key);
    await self.clients.claim();
  })());
});

self.addEventListener("message", (event) => {
  if (event.data?.type === "SKIP_WAITING") self.skipWaiting();
  if (event.data?.type === "CLEAR_API_CACHE") event.waitUntil(caches.delete(API_CACHE));
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return; // tiles and the like: the browser's business
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/open311/")) {
    if (req.method === "GET" && CACHED_API.some((re) => re.test(url.pathname))) event.respondWith(networkThenCache(req));
    return; // network-only
  }
  if (req.method !== "GET") return;
  if (req.mode === "navigate") {
    event.respondWith(caches.match("/index.html", { cacheName: VERSION }).then((hit) => hit || fetch(req)));
    return;
  }
  const keep = ON_FIRST_USE.some((re) => re.test(url.pathname));
  event.respondWith(caches.match(req, { cacheName: VERSION, ignoreSearch: true }).then((hit) => hit || (keep ? fetchAndKeep(req) : fetch(req))));
});

async function fetchAndKeep(req) {
  const res = await fetch(req);
  if (res.status === 200) await (await caches.open(VERSION)).put(req, res.clone());
  return res;
}

async function networkThenCache(req) {
  const cache = await caches.open(API_CACHE);
  try {
    const res = await fetch(req);
    if (res.status === 200) await cache.put(req, res.clone());
    return res;
  } catch (e) {
    const hit = await cache.match(req);
    if (hit) return hit;
    throw e;
  }
}

self.addEventListener("sync", (event) => {
  if (event.tag !== "gridcase-outbox") return;
  event.waitUntil((async () => {
    const clients = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    // A page that is open sends (it shows progress); with none open, the worker sends the outbox itself.
    if (clients.length) clients[0].postMessage({ type: "sync" });
    else await syncNow("background");
  })());
});
