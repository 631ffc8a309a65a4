import { test } from "node:test";
import assert from "node:assert/strict";
import {
  applyResults, backoffMs, canonical, editItem, failBatch, newItem, nextWake, outboxSummary,
  pickBatch, recover, rejectBatch, resend, toOp, MAX_BATCH, STATES,
} from "../../static/pwa/js/core/outbox.js";

let n = 0;
const uuid = () => `00000000-0000-4000-8000-${String(++n).padStart(12, "0")}`;
const report = (desc = "楼道堆放杂物") => ({ report: { id: uuid(), category: "fire_hazard", risk_level: "red", description: desc } });
const item = (seq, extra = {}) => ({ ...newItem({ id: `i${seq}`, opId: uuid(), seq, type: "report.create", body: report(), now: 1000 + seq }), ...extra });

test("canonical JSON ignores key order", () => {
  assert.equal(canonical({ b: 1, a: [1, { d: 2, c: 3 }] }), canonical({ a: [1, { c: 3, d: 2 }], b: 1 }));
  assert.notEqual(canonical({ a: 1 }), canonical({ a: 2 }));
});

test("a new item waits and becomes the op the server expects", () => {
  const it = item(7);
  assert.equal(it.state, STATES.WAITING);
  const op = toOp(it);
  assert.deepEqual(Object.keys(op).sort(), ["op_id", "report", "seq", "type"]);
  assert.equal(op.seq, 7);
});

test("batches go in seq order, at most 50, and stop at an item still backing off", () => {
  const items = Array.from({ length: 60 }, (_, i) => item(60 - i));
  const batch = pickBatch(items, 5000);
  assert.equal(batch.length, MAX_BATCH);
  assert.deepEqual(batch.slice(0, 3).map((i) => i.seq), [1, 2, 3]);
  const blocked = items.map((i) => (i.seq === 3 ? { ...i, next_at: 9999 } : i));
  assert.deepEqual(pickBatch(blocked, 5000).map((i) => i.seq), [1, 2]);
  const notWaiting = items.map((i) => (i.seq === 1 ? { ...i, state: STATES.NEEDS_FIXING } : i));
  assert.equal(pickBatch(notWaiting, 5000)[0].seq, 2);
});

test("results move items to the right state", () => {
  const batch = [1, 2, 3, 4, 5, 6, 7].map((s) => item(s));
  const st = ["applied", "duplicate", "held", "conflict", "rejected", "retry"];
  const results = st.map((status, k) => ({ op_id: batch[k].op_id.toUpperCase(), status, code: status === "rejected" ? "validation_failed" : undefined, retry_after_s: status === "retry" ? 30 : undefined }));
  const out = applyResults(batch, results, 10_000, { random: () => 0 });
  assert.deepEqual(out.map((i) => i.state), ["sent", "sent", "held", "conflict", "needs_fixing", "waiting", "waiting"]);
  assert.equal(out[4].result.code, "validation_failed");
  assert.ok(out[5].next_at >= 10_000 + 30_000, "Retry-After is a floor");
  assert.equal(out[6].attempts, 1, "an op missing from the answer is tried again");
  assert.equal(out[0].sent_at, 10_000);
});

test("a duplicate of a conflict stays shown as a conflict", () => {
  const [it] = [item(1)];
  const [out] = applyResults([it], [{ op_id: it.op_id, status: "duplicate", original_status: "conflict" }], 1);
  assert.equal(out.state, STATES.CONFLICT);
});

test("editing keeps the op_id only when the content is unchanged", () => {
  const it = { ...item(1), state: STATES.NEEDS_FIXING, result: { status: "rejected" } };
  const opts = { newOpId: () => "new-op", newSeq: () => 99, now: 5 };
  const same = editItem(it, JSON.parse(JSON.stringify(it.body)), opts);
  assert.equal(same.op_id, it.op_id);
  assert.equal(same.seq, 1);
  assert.equal(same.state, STATES.WAITING);
  const changed = editItem(it, { report: { ...it.body.report, micro_grid_id: "3303810010010101" } }, opts);
  assert.equal(changed.op_id, "new-op");
  assert.equal(changed.seq, 99);
  assert.equal(changed.body.report.id, it.body.report.id, "the case id stays: the case was never created");
  // changing back after an edit is a change again relative to the new op's content
  const back = editItem(changed, it.body, opts);
  assert.equal(back.op_id, "new-op");
  assert.equal(resend(it, 6).op_id, it.op_id);
});

test("back-off grows exponentially with jitter, is capped, and honours Retry-After", () => {
  assert.equal(backoffMs(1, { random: () => 0 }), 1000);
  assert.equal(backoffMs(1, { random: () => 1 }), 2000);
  assert.equal(backoffMs(3, { random: () => 1 }), 8000);
  assert.equal(backoffMs(30, { random: () => 1, capMs: 60_000 }), 60_000);
  assert.equal(backoffMs(1, { random: () => 0, retryAfterS: 120 }), 120_000);
  for (let a = 1; a < 8; a++) {
    const d = backoffMs(a);
    assert.ok(d >= 1000 * 2 ** (a - 1) && d <= 2000 * 2 ** (a - 1));
  }
});

test("a failed batch goes back to waiting with a back-off; a refused envelope needs fixing", () => {
  const batch = [item(1), { ...item(2), attempts: 2 }];
  const out = failBatch(batch, 100, { random: () => 1, error: "network" });
  assert.deepEqual(out.map((i) => [i.state, i.attempts, i.next_at]), [["waiting", 1, 2100], ["waiting", 3, 8100]]);
  assert.equal(nextWake(out), 2100);
  const rej = rejectBatch(batch, 1, { code: "validation_failed", detail: "x" });
  assert.ok(rej.every((i) => i.state === STATES.NEEDS_FIXING && i.result.code === "validation_failed"));
});

test("summary and recovery", () => {
  const items = [item(1, { state: STATES.SENT }), item(2, { state: STATES.SENDING, photos: ["a"] }),
    item(3, { photos: ["a", "b"] }), item(4, { state: STATES.NEEDS_FIXING, photos: ["c"] })];
  const s = outboxSummary(items);
  assert.equal(s.pending, 3);
  assert.equal(s.oldest, new Date(1002).toISOString());
  assert.deepEqual(recover(items, 9).map((i) => [i.id, i.state]), [["i2", "waiting"]]);
  assert.deepEqual(outboxSummary([]), { pending: 0, oldest: null });
});
