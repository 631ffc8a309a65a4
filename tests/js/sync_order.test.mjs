import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffMs, parseRetryAfter, syncSteps } from "../../static/pwa/js/core/outbox.js";

test("a sync run pushes the ops before it uploads photos", () => {
  const steps = syncSteps();
  assert.ok(steps.indexOf("ops") < steps.indexOf("photos"));
  assert.deepEqual(steps, ["ops", "photos", "pull", "reference", "tidy"]);
});

test("Retry-After is read as seconds or an HTTP date", () => {
  assert.equal(parseRetryAfter("30"), 30);
  const now = Date.parse("2026-12-02T12:00:00Z");
  assert.equal(parseRetryAfter("Wed, 02 Dec 2026 12:01:00 GMT", now), 60);
  assert.equal(parseRetryAfter("Wed, 02 Dec 2026 11:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter(""), null);
  assert.equal(parseRetryAfter("soon"), null);
});

test("503 Retry-After: 30 puts the next attempt at least 30 s away", () => {
  assert.ok(backoffMs(1, { retryAfterS: parseRetryAfter("30"), random: () => 0 }) >= 30_000);
});
