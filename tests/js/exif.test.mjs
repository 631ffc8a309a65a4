import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { readExif } from "../../static/pwa/js/core/exif.js";
import { ago, isoWithOffset } from "../../static/pwa/js/core/time.js";

const photo = (name) => {
  const b = readFileSync(new URL(`../fixtures/photos/${name}`, import.meta.url));
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
};

test("reads DateTimeOriginal and GPS from a camera JPEG", () => {
  const e = readExif(photo("DSCN0010.jpg"));
  assert.equal(e.taken_at, "2008-10-22T16:28:39");
  assert.ok(Math.abs(e.lat - 43.4674) < 0.001, String(e.lat));
  assert.ok(Math.abs(e.lon - 11.8851) < 0.001, String(e.lon));
  assert.equal(e.orientation, 1);
});

test("never throws on broken or foreign files", () => {
  assert.deepEqual(readExif(new ArrayBuffer(0)), {});
  assert.deepEqual(readExif(photo("corrupted.jpg")), readExif(photo("corrupted.jpg")));
  assert.deepEqual(readExif(new TextEncoder().encode("not a jpeg at all").buffer), {});
});

test("device time carries its offset", () => {
  const d = new Date(Date.UTC(2026, 10, 22, 0, 3, 11));
  assert.equal(isoWithOffset(d, 480), "2026-11-22T08:03:11+08:00");
  assert.equal(isoWithOffset(d, -90), "2026-11-21T22:33:11-01:30");
  assert.equal(ago(90_000), "2分钟");
  assert.equal(ago(3 * 3600_000, "en"), "3 h");
});
