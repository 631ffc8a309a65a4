// The app shell: small enough for a weak network, fully precached by the service worker, readable outdoors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";

const PWA = new URL("../../static/pwa/", import.meta.url).pathname;
const BUDGET = 150 * 1024; // gzip bytes for HTML, CSS and our own JS (vendor/ excluded)

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}
const own = walk(PWA).filter((p) => !relative(PWA, p).startsWith("vendor") && /\.(html|css|js|webmanifest)$/.test(p));

test("the app shell stays under 150 KB gzipped", () => {
  const total = own.reduce((n, p) => n + gzipSync(readFileSync(p), { level: 9 }).length, 0);
  assert.ok(total < BUDGET, `${total} bytes`);
});

test("the service worker precaches every shell file, and only files that exist", () => {
  const sw = readFileSync(join(PWA, "sw.js"), "utf8");
  const list = JSON.parse(sw.match(/const SHELL = (\[[\s\S]*?\]);/)[1].replace(/,\s*\]/, "]"));
  for (const url of list) {
    if (url === "/") continue;
    assert.ok(existsSync(join(PWA, url)), `${url} is precached but missing`);
  }
  for (const path of own) {
    const url = "/" + relative(PWA, path).split("\\").join("/");
    if (url === "/sw.js" || url.endsWith(".md")) continue;
    assert.ok(list.includes(url), `${url} is not precached`);
  }
  for (const path of walk(join(PWA, "icons"))) assert.ok(list.includes("/" + relative(PWA, path)), path);
  const manifest = JSON.parse(readFileSync(join(PWA, "manifest.webmanifest"), "utf8"));
  assert.equal(manifest.start_url, "/");
  assert.equal(manifest.display, "standalone");
  for (const icon of manifest.icons) assert.ok(list.includes(icon.src), icon.src);
  assert.ok(manifest.icons.some((i) => i.purpose === "maskable"));
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
