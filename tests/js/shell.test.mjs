// The app shell: small enough for a weak network, fully precached by the service worker, readable outdoors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";
import { closure, url } from "./pwa_modules.mjs";
import { ROUTES } from "../../static/pwa/js/router.js";

const PWA = new URL("../../static/pwa/", import.meta.url).pathname;
const BUDGET = 150 * 1024; // gzip bytes for HTML, CSS and our own JS (vendor/ excluded)

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}
const own = walk(PWA).filter((p) => !relative(PWA, p).startsWith("vendor") && /\.(html|css|js|webmanifest)$/.test(p));

const gz = (files) => [...files].reduce((n, p) => n + gzipSync(readFileSync(p), { level: 9 }).length, 0);

test("the app shell stays under 150 KB gzipped", () => {
  const total = gz(own);
  assert.ok(total < BUDGET, `${total} bytes`);
});

const sw = readFileSync(join(PWA, "sw.js"), "utf8");
const SHELL = JSON.parse(sw.match(/const SHELL = (\[[\s\S]*?\]);/)[1].replace(/,\s*\]/, "]"));
const ON_FIRST_USE = sw.match(/const ON_FIRST_USE = \[(.*)\];/)[1].split(/,\s*/).map((re) => new RegExp(re.slice(1, -1)));
const onFirstUse = (u) => ON_FIRST_USE.some((re) => re.test(u));
const routeFiles = (pred) => Object.values(ROUTES).filter(pred).map((r) => join(PWA, "js", r.module));
// what a field phone loads: the page's modules, the field routes' views, the service worker's, the photo worker
const FIELD = closure([join(PWA, "js/main.js"), join(PWA, "sw.js"), ...routeFiles((r) => !r.console)]);
const CONSOLE = closure(routeFiles((r) => r.console));

test("the service worker precaches every shell file, and only files that exist", () => {
  for (const u of SHELL) {
    if (u === "/") continue;
    assert.ok(existsSync(join(PWA, u)), `${u} is precached but missing`);
  }
  for (const path of own) {
    const u = url(path);
    if (u === "/sw.js" || u.endsWith(".md")) continue;
    assert.ok(SHELL.includes(u) !== onFirstUse(u), `${u} must be either precached or kept on first use`);
  }
  for (const path of walk(join(PWA, "icons"))) assert.ok(SHELL.includes("/" + relative(PWA, path)), path);
  const manifest = JSON.parse(readFileSync(join(PWA, "manifest.webmanifest"), "utf8"));
  assert.equal(manifest.start_url, "/");
  assert.equal(manifest.display, "standalone");
  for (const icon of manifest.icons) assert.ok(SHELL.includes(icon.src), icon.src);
  assert.ok(manifest.icons.some((i) => i.purpose === "maskable"));
});

test("the field app's modules are all precached (it opens offline), and the console's none of them", () => {
  for (const f of FIELD) if (f !== join(PWA, "sw.js")) assert.ok(SHELL.includes(url(f)), `${url(f)} is loaded by the field app but not precached`);
  for (const u of SHELL.filter((x) => x.startsWith("/js/"))) assert.ok(FIELD.has(join(PWA, u)), `${u} is precached but the field app never loads it`);
  const consoleOnly = [...CONSOLE].filter((f) => !FIELD.has(f));
  assert.ok(consoleOnly.length >= 6, consoleOnly.map(url).join());
  for (const f of consoleOnly) assert.ok(onFirstUse(url(f)) && !SHELL.includes(url(f)), url(f));
});

test("a field phone never loads the reviewer console: no import path leads there", () => {
  const reached = [...FIELD].map(url).filter((u) => u.startsWith("/js/review/") || onFirstUse(u));
  assert.deepEqual(reached, []);
  assert.ok(CONSOLE.has(join(PWA, "js/review/queue.js")) && CONSOLE.has(join(PWA, "js/core/charts.js")));
});

// WCAG 2 relative luminance and contrast ratio.
function lum(hex) {
  const c = hex.replace("#", "").match(/../g).map((x) => parseInt(x, 16) / 255)
    .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}
function ratio(a, b) {
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

test("text colours reach 4.5:1 on their backgrounds", () => {
  const css = readFileSync(join(PWA, "css/app.css"), "utf8");
  const v = Object.fromEntries([...css.matchAll(/--([\w-]+):\s*(#[0-9a-fA-F]{6})/g)].map((m) => [m[1], m[2]]));
  const pairs = [
    [v.ink, v.bg], [v.ink, "#ffffff"], [v.muted, "#ffffff"], [v.muted, v.bg], ["#ffffff", v.blue], [v.blue, "#ffffff"],
    ["#ffffff", v.red], [v.red, "#ffffff"], ["#1a1a1a", v.yellow], ["#5c4700", "#ffffff"], ["#5c4700", "#fff6cc"],
    ["#ffffff", v["risk-blue"]], [v["risk-blue"], "#ffffff"], [v.bad, "#ffebee"], [v.warn, "#fff3e0"], [v.ok, "#e8f5e9"],
    ["#102a43", "#e3ecf7"], ["#3e2c00", "#fff3cd"], ["#4e2600", "#ffe0b2"], ["#3e2c00", "#ffe082"], ["#111111", "#ffffff"],
    // reviewer console: light words on their fills, map labels, figures
    ["#ffffff", v.ok], ["#ffffff", "#424242"], [v.ink, "#fff6cc"], [v.blue, "#ffffff"], [v.muted, "#f1f1f1"], [v.ink, "#ffebee"],
  ];
  for (const [fg, bg] of pairs) assert.ok(ratio(fg, bg) >= 4.5, `${fg} on ${bg}: ${ratio(fg, bg).toFixed(2)}`);
});
