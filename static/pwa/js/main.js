// The app's start: draws the route of the hash (router.js's table → a view module), hands a view's clicks to
// that view's own actions, redraws on sync events, and registers the service worker. State lives in IndexedDB
// (db.js) and the sync engine; the field app is js/field/, the reviewer console js/review/ (loaded for
// reviewers and admins only).
import * as store from "./db.js";
import { HttpError, lang, session } from "./api.js";
import { setLang, t } from "./i18n.js";
import { onChange, requestSync, syncNow } from "./sync.js";
import { current, load, resolve, ROUTES, setRenderer } from "./router.js";
import { bindChrome, chrome, offerUpdate, statusBar } from "./shell.js";
import { dispatch, esc, view } from "./ui.js";
import { stopGeo } from "./field/location.js";
import { startWatch } from "./watch.js";

let renderGen = 0;
let shown = null; // the view module on screen
// view modules already loaded: a redraw draws at once, with no await between deciding and drawing (a sync
// event's redraw checks that nobody is typing; it must not land after the user started)
const loaded = new Map();

async function render() {
  // a newer navigation wins: a render still waiting for the session must not draw over the next view
  const gen = ++renderGen;
  const s = await session();
  if (gen !== renderGen) return;
  current.me = s?.user || null;
  const { name, arg, route } = resolve(location.hash, current.me);
  if (!route.gps) stopGeo();
  let mod = loaded.get(route.module);
  if (!mod) {
    try {
      mod = await load(route);
      loaded.set(route.module, mod);
    } catch (e) {
      console.warn(e); // a console module not cached yet, and no network
    }
    if (gen !== renderGen) return;
  }
  current.name = name;
  shown = mod;
  view().dataset.view = name;
  if (mod) await mod.render(arg);
  else view().innerHTML = `<p class="err" role="alert">${esc(t("load_failed"))}: ${esc(route.console ? t("console_offline") : t("offline"))}</p>`;
  chrome(current.me, name);
}

/** Sync events come in bursts (several per photo and per batch): redraw at most every 150 ms. */
let burst = null;
function onSyncChange(kind) {
  if (!burst) {
    burst = { live: false };
    setTimeout(() => {
      const { live } = burst;
      burst = null;
      if (live) refreshLive();
      else if (current.name === "outbox") render();
      else statusBar();
    }, 150);
  }
  if (kind !== "progress") burst.live = true;
}

/** Views that only display data are redrawn when the outbox or the cases change. */
function refreshLive() {
  statusBar();
  if (ROUTES[current.name]?.live && !view().querySelector("textarea:focus, input:focus")) render();
}

async function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  try {
    const reg = await navigator.serviceWorker.register("/sw.js", { scope: "/", type: "module" });
    if (reg.waiting && navigator.serviceWorker.controller) offerUpdate(reg);
    reg.addEventListener("updatefound", () => {
      const w = reg.installing;
      w?.addEventListener("statechange", () => { if (w.state === "installed" && navigator.serviceWorker.controller) offerUpdate(reg); });
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
  setRenderer(render);
  bindChrome();
  view().addEventListener("click", (e) => dispatch(e, shown?.actions));
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
  startWatch();
  setInterval(statusBar, 30_000);
}

boot().catch((e) => { console.error(e); view().textContent = String(e); });
window.gridcase = { store, syncNow, HttpError };
