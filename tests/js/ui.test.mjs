// The shared UI module: escaping (the one esc of the app), chips that carry a word, byte counts, options,
// and the click delegation each view uses.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { closure, JS, url } from "./pwa_modules.mjs";
import { bytes, dispatch, esc, flagChips, itemChip, lightChip, opt, riskChip, stateChip } from "../../static/pwa/js/ui.js";

test("esc escapes the five HTML characters, and nothing else", () => {
  assert.equal(esc(`<a href="x" title='y'>Tom & Jerry</a>`), "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;Tom &amp; Jerry&lt;/a&gt;");
  assert.equal(esc("楼道堆放杂物 ±8 m"), "楼道堆放杂物 ±8 m");
  assert.equal(esc("&amp;"), "&amp;amp;", "escaped once more, not left as is");
});

test("esc turns null and undefined into nothing, and other values into their text", () => {
  assert.equal(esc(null), "");
  assert.equal(esc(undefined), "");
  assert.equal(esc(0), "0");
  assert.equal(esc(false), "false");
  assert.equal(esc(12.5), "12.5");
});

const readdir = (dir) => readdirSync(dir).filter((n) => n.endsWith(".js")).map((n) => join(dir, n));

test("esc is written once: no other module of the app defines its own", () => {
  const files = closure([join(JS, "main.js"), ...["field", "review"].flatMap((d) => readdir(join(JS, d)))]);
  const defs = [...files].filter((f) => /\b(?:const|let|var|function)\s+esc\b/.test(readFileSync(f, "utf8"))).map(url);
  assert.deepEqual(defs, ["/js/ui.js"]);
});

test("chips carry the word of their colour or state, escaped", () => {
  assert.equal(riskChip("red"), '<span class="chip red">红</span>');
  assert.equal(riskChip(null), "");
  assert.equal(stateChip("resolved"), '<span class="chip st">已整改</span>');
  assert.equal(itemChip("needs_fixing"), '<span class="chip needs_fixing">需要修改</span>');
  assert.match(lightChip("red"), /data-light="red".*超期<\/span>$/);
  assert.equal(lightChip(undefined), "");
  assert.match(riskChip('"><script>'), /^<span class="chip &quot;&gt;&lt;script&gt;">/);
  assert.equal(flagChips(["clock_skew", "x<y"]).includes("x&lt;y"), true);
  assert.equal(flagChips(undefined), "");
});

test("bytes are written for people", () => {
  assert.equal(bytes(0), "0 B");
  assert.equal(bytes(1023), "1023 B");
  assert.equal(bytes(1536), "1.5 KB");
  assert.equal(bytes(300 * 1024), "300 KB");
  assert.equal(bytes(1024 ** 3), "1.0 GB");
  assert.equal(bytes(NaN), "?");
  assert.equal(bytes(undefined), "?");
});

test("opt selects the current value and escapes", () => {
  assert.equal(opt("red", "红", "red"), '<option value="red" selected>红</option>');
  assert.equal(opt("", "全部", undefined), '<option value="" selected>全部</option>');
  assert.equal(opt(3, "<3>", "4"), '<option value="3">&lt;3&gt;</option>');
});

/** A click on `target`, whose closest [data-action] ancestor is `el` (or none). */
const click = (el) => ({ target: { closest: (sel) => (sel === "[data-action]" ? el : null) } });
const button = (action) => ({ dataset: { action } });

test("dispatch hands the clicked action's element to the view's handler", async () => {
  const calls = [];
  const actions = { save: (el, e) => { calls.push([el.dataset.action, Boolean(e.target)]); return "done"; } };
  assert.equal(await dispatch(click(button("save")), actions), "done");
  assert.deepEqual(calls, [["save", true]]);
});

test("dispatch ignores clicks outside actions, actions of other views, and names on Object.prototype", () => {
  const actions = { save: () => assert.fail("not this one") };
  assert.equal(dispatch(click(null), actions), undefined);
  assert.equal(dispatch(click(button("delete-item")), actions), undefined);
  assert.equal(dispatch(click(button("toString")), actions), undefined);
  assert.equal(dispatch(click(button("save")), undefined), undefined);
  assert.equal(dispatch({ target: null }, actions), undefined);
});
