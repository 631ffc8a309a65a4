// The route table: route names → view modules (field app under js/field/, the reviewer console under
// js/review/, for reviewers and admins only), what a hash resolves to for whom, and each view's clicks
// handled by its own actions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fakeBrowser, importsOf, JS } from "./pwa_modules.mjs";
import { ADMIN_TABS, CONSOLE_TABS, FIELD_TABS, homeOf, isReviewer, parse, resolve, ROUTES, tabsFor } from "../../static/pwa/js/router.js";

fakeBrowser();
const worker = { username: "wanggeyuan", role: "grid_worker" };
const volunteer = { username: "zhiyuanzhe", role: "volunteer" };
const reviewer = { username: "reviewer", role: "reviewer" };
const admin = { username: "admin", role: "admin" };

test("every route names a view module that exists: the consoles' under review/ or admin/, the field app's under field/", () => {
  for (const [name, route] of Object.entries(ROUTES)) {
    assert.ok(existsSync(join(JS, route.module)), `${name}: ${route.module} is missing`);
    assert.equal(route.module.startsWith("review/") || route.module.startsWith("admin/"), Boolean(route.console), name);
    if (route.admin) assert.ok(route.module.startsWith("admin/"), name);  // admins-only views are the rules, under admin/
    assert.ok(route.console || route.module.startsWith("field/"), name);
  }
});

test("every tab is a route whose own tab it is", () => {
  for (const tab of [...FIELD_TABS, ...CONSOLE_TABS, ...ADMIN_TABS]) assert.equal(ROUTES[tab]?.tab, tab, tab);
  assert.equal(ROUTES.case.tab, "tasks");
  assert.equal(ROUTES.fix.tab, "outbox");
  assert.equal(ROUTES.review.tab, "queue");
  assert.ok(FIELD_TABS.every((tab) => !ROUTES[tab].console), "a field tab leads into the console");
});

test("a hash parses into the route's name and its argument", () => {
  assert.deepEqual(parse("#case/8c0f"), { name: "case", arg: "8c0f" });
  assert.deepEqual(parse("#queue"), { name: "queue", arg: undefined });
  assert.deepEqual(parse(""), { name: "", arg: undefined });
  assert.deepEqual(parse(undefined), { name: "", arg: undefined });
});

test("nobody logged in sees the login; asking for it shows it to anybody", () => {
  for (const hash of ["", "#capture", "#queue", "#review/x", "#nonsense"]) assert.equal(resolve(hash, null).name, "login", hash);
  assert.equal(resolve("#login", worker).name, "login");
  assert.equal(resolve("#login", reviewer).name, "login");
});

test("field users never get a console route: they land on 上报", () => {
  for (const user of [worker, volunteer]) {
    assert.ok(!isReviewer(user));
    for (const name of ["queue", "review", "conflicts", "dash", "devices"]) {
      const r = resolve(`#${name}/x`, user);
      assert.equal(r.name, "capture", `${user.role} on #${name}`);
      assert.ok(!r.route.console);
    }
    assert.equal(resolve("", user).name, "capture");
    assert.deepEqual(tabsFor(user), FIELD_TABS);
  }
});

test("reviewers and admins get the console, land on the queue, and may use the field views too", () => {
  for (const user of [reviewer, admin]) {
    assert.ok(isReviewer(user));
    assert.equal(homeOf(user), "queue");
    assert.equal(resolve("", user).name, "queue");
    assert.equal(resolve("#nonsense", user).name, "queue");
    assert.deepEqual(resolve("#review/abc", user), { name: "review", arg: "abc", route: ROUTES.review });
    assert.equal(resolve("#capture", user).name, "capture");
    assert.equal(resolve("#outbox", user).name, "outbox");
    assert.deepEqual(tabsFor(user), user.role === "admin" ? ADMIN_TABS : CONSOLE_TABS);
  }
});

test("the rules (js/admin/) are the admin's alone: a reviewer lands on the queue", () => {
  for (const name of ["admin-categories", "admin-time-limits", "admin-calendar", "admin-regions"]) {
    assert.equal(resolve(`#${name}`, reviewer).name, "queue", name);
    assert.equal(resolve(`#${name}`, worker).name, "capture", name);
    assert.equal(resolve(`#${name}`, admin).name, name);
    assert.equal(ROUTES[name].tab, "admin");
  }
});

test("names on Object.prototype are not routes", () => {
  for (const hash of ["#toString", "#constructor", "#__proto__", "#hasOwnProperty"]) assert.equal(resolve(hash, worker).name, "capture", hash);
});

/** data-action="…" names a module draws, itself or through the view modules beside it that it imports. */
function drawnActions(file) {
  const files = [file, ...importsOf(file).filter((f) => dirname(f) === dirname(file))];
  const names = new Set();
  for (const f of files) for (const m of readFileSync(f, "utf8").matchAll(/data-action="([\w-]+)"/g)) names.add(m[1]);
  return names;
}

test("each view module renders and handles every button it draws with its own actions", async () => {
  for (const [name, route] of Object.entries(ROUTES)) {
    const mod = await import(join(JS, route.module));
    assert.equal(typeof mod.render, "function", `${name} has no render()`);
    const handled = new Set(Object.keys(mod.actions || {}));
    for (const action of drawnActions(join(JS, route.module))) assert.ok(handled.has(action), `${name}: data-action=${action} is not handled`);
    for (const fn of Object.values(mod.actions || {})) assert.equal(typeof fn, "function", name);
  }
});
