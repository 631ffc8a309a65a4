// The deadline where work is done: the light from a case's warn_at and due_at (the phone holds them offline),
// the time left in words, the clock named; and the poll that brings new work (default at most a minute).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { JS } from "./pwa_modules.mjs";
import { deadlineLine, lightAt, span } from "../../static/pwa/js/ui.js";

const now = Date.parse("2026-12-02T08:00:00Z");
const hours = (h) => new Date(now + h * 3600_000).toISOString();

test("lightAt: green before warn_at, yellow from it, red from due_at, none without a running stage", () => {
  assert.equal(lightAt({ warn_at: hours(1), due_at: hours(3) }, now), "green");
  assert.equal(lightAt({ warn_at: hours(-1), due_at: hours(3) }, now), "yellow");
  assert.equal(lightAt({ warn_at: hours(-5), due_at: hours(-1) }, now), "red");
  assert.equal(lightAt({ due_at: null }, now), null);
});

test("span says minutes, hours or days", () => {
  assert.equal(span(25 * 60_000), "25 分钟");
  assert.equal(span(3 * 3600_000), "3 小时");
  assert.equal(span(-3 * 3600_000), "3 小时");
  assert.equal(span(72 * 3600_000), "3 天");
});

test("deadlineLine carries the light's word, the time left and the clock, never the colour alone", () => {
  const line = deadlineLine({ stage: "close", clock: "working", warn_at: hours(-1), due_at: hours(3) }, { now });
  assert.match(line, /data-light="yellow"/);
  assert.match(line, /临期/);
  assert.match(line, /办结时限 · 剩 3 小时 · 工作时间/);
  assert.match(deadlineLine({ stage: "accept", clock: "natural", due_at: hours(-2) }, { now }), /超期.*已超 2 小时 · 自然时间/);
  // the server's minutes on the stage's own clock win over wall-clock time
  assert.match(deadlineLine({ stage: "close", clock: "working", light: "green", due_at: hours(48) }, { now, leftMinutes: 90 }), /剩 90 分钟/);
  assert.equal(deadlineLine({ stage: null, due_at: null }, { now }), "");
});

test("the open app asks for new work at least once a minute by default", () => {
  const src = readFileSync(join(JS, "watch.js"), "utf8");
  const ms = Number(/export const DEFAULT_POLL_MS = ([\d_]+);/.exec(src)[1].replaceAll("_", ""));
  assert.ok(ms > 0 && ms <= 60_000, `DEFAULT_POLL_MS = ${ms}`);
  const py = readFileSync(join(JS, "../../../app/cases/watch.py"), "utf8");
  assert.ok(Number(/POLL_SECONDS = (\d+)/.exec(py)[1]) * 1000 === ms, "the server's poll_s and the app's interval agree");
});
