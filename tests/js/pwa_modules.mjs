// What the PWA tests share: the static import graph of static/pwa (no bundler: the files are the modules),
// and the few browser globals the view modules read on import, for loading them in node.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";

export const PWA = new URL("../../static/pwa/", import.meta.url).pathname;
export const JS = join(PWA, "js");

const IMPORTS = [
  /\b(?:import|export)\s+(?:[\w*{}\s,$]+?\s+from\s+)?["']([^"']+)["']/g, // import x from "…", import "…", export … from "…"
  /\bimport\(\s*["']([^"']+)["']\s*\)/g, // import("…")
  /new\s+URL\(\s*["']([^"']+\.js)["']\s*,\s*import\.meta\.url\s*\)/g, // new Worker(new URL("…", import.meta.url))
];

/** The files a module names (absolute paths): "/js/x.js" from the site root, "./x.js" from the module. */
export function importsOf(file) {
  const src = readFileSync(file, "utf8");
  const out = new Set();
  for (const re of IMPORTS) {
    for (const m of src.matchAll(re)) {
      const spec = m[1];
      if (spec.startsWith("/")) out.add(join(PWA, spec));
      else if (spec.startsWith(".")) out.add(join(dirname(file), spec));
    }
  }
  return [...out];
}

/** Every file reached from the roots by static imports, dynamic imports with a literal name, and workers. */
export function closure(roots) {
  const seen = new Set();
  const todo = [...roots];
  while (todo.length) {
    const f = todo.pop();
    if (seen.has(f)) continue;
    if (!existsSync(f)) throw new Error(`${relative(PWA, f)} is imported but missing`);
    seen.add(f);
    todo.push(...importsOf(f));
  }
  return seen;
}

export const url = (file) => "/" + relative(PWA, file).split("\\").join("/");

/** Enough of a browser for the view modules to load in node (they touch the DOM only when drawing). */
export function fakeBrowser() {
  const storage = () => {
    const m = new Map();
    return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) };
  };
  globalThis.self ??= {}; // no BroadcastChannel: sync.js then opens none (one would keep node running)
  globalThis.sessionStorage ??= storage();
  globalThis.localStorage ??= storage();
}
