// The routes: a table from a route's name (the first part of the hash: "#case/<id>" is case) to its view
// module, its tab and what it needs. Nothing is loaded on import: main.js draws the route, node tests the table.
// A view module exports render(arg) and, when it has buttons, actions: { "data-action name": (el, event) => … }.
// The reviewer console's modules (js/review/) are imported only when a reviewer or admin opens one of its
// routes, so a grid worker's or volunteer's phone never downloads them; the field app's are precached (sw.js).

export const isReviewer = (user) => user?.role === "reviewer" || user?.role === "admin";

/**
 * module: the view, under js/; tab: the bottom tab that is current on this route; gps: keeps the GPS watch
 * running; live: redrawn when the outbox or the cases change; console: reviewers and admins only; admin: admins only
 * (the rules: js/admin/).
 */
export const ROUTES = Object.freeze({
  login: { module: "field/login.js" },
  capture: { module: "field/capture.js", tab: "capture", gps: true },
  tasks: { module: "field/tasks.js", tab: "tasks", live: true },
  case: { module: "field/case.js", tab: "tasks", live: true },
  map: { module: "field/map.js", tab: "map", gps: true },
  outbox: { module: "field/outbox.js", tab: "outbox", live: true },
  fix: { module: "field/fix.js", tab: "outbox" },
  me: { module: "field/me.js", tab: "me" },
  queue: { module: "review/queue.js", tab: "queue", console: true },
  review: { module: "review/case.js", tab: "queue", console: true },
  conflicts: { module: "review/conflicts.js", tab: "conflicts", console: true },
  dash: { module: "review/dashboard.js", tab: "dash", console: true },
  devices: { module: "review/devices.js", tab: "devices", console: true },
  "admin-categories": { module: "admin/categories.js", tab: "admin", console: true, admin: true },
  "admin-time-limits": { module: "admin/time-limits.js", tab: "admin", console: true, admin: true },
  "admin-calendar": { module: "admin/calendar.js", tab: "admin", console: true, admin: true },
  "admin-regions": { module: "admin/regions.js", tab: "admin", console: true, admin: true },
  // the admin console (js/admin/): its index, then one route per view, loaded only when opened
  admin: { module: "admin/index.js", tab: "admin", console: true },
  "admin-people": { module: "admin/people.js", tab: "admin", console: true },
  "admin-audit": { module: "admin/audit.js", tab: "admin", console: true },
});

/** A route's view module (relative to this file; loaded once, then from the module map). */
export const load = (route) => import(`./${route.module}`);

export const FIELD_TABS = ["capture", "tasks", "map", "outbox", "me"];
export const CONSOLE_TABS = ["queue", "conflicts", "dash", "devices", "admin", "me"];

export const ADMIN_TABS = CONSOLE_TABS; // the rules are views of 管理 too, for admins only

export const tabsFor = (user) => (user?.role === "admin" ? ADMIN_TABS : isReviewer(user) ? CONSOLE_TABS : FIELD_TABS);
export const homeOf = (user) => (isReviewer(user) ? "queue" : "capture");

/** "#case/abc" → { name: "case", arg: "abc" }. */
export function parse(hash) {
  const [name = "", arg] = String(hash || "").replace(/^#/, "").split("/");
  return { name, arg };
}

/**
 * The route to draw for a hash and the logged-in user (null when nobody is): login without a user or when
 * asked; the console's routes only for reviewers and admins; the user's home for anything else.
 */
export function resolve(hash, user) {
  const { name, arg } = parse(hash);
  if (!user || name === "login") return { name: "login", arg, route: ROUTES.login };
  const route = Object.hasOwn(ROUTES, name) && name !== "login" ? ROUTES[name] : null;
  if (route && (!route.console || isReviewer(user)) && (!route.admin || user.role === "admin")) return { name, arg, route };
  const home = homeOf(user);
  return { name: home, arg, route: ROUTES[home] };
}

/** Where the app is and who is looking: set by main.js before each view is drawn. */
export const current = { name: null, me: null };

let draw = async () => {};
/** main.js hands over its renderer (views never import main.js). */
export function setRenderer(fn) { draw = fn; }
/** Draws the current route again. */
export const redraw = () => draw();
/** Goes to a route; to the same one, draws it again. */
export function go(hash) {
  if (location.hash === hash) return redraw();
  location.hash = hash;
}
