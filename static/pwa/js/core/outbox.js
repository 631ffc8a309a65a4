// The outbox as pure data: what state each item is in, which ops go in the next batch, what a server
// answer does to them, and how long to wait before trying again. No DOM, no IndexedDB, no clock or
// randomness of its own (callers pass `now` and `random`), so node's test runner covers all of it.

export const MAX_BATCH = 50;

/** Item states. "held" is sent-held: the server keeps the op until its case arrives. */
export const STATES = Object.freeze({
  WAITING: "waiting", SENDING: "sending", SENT: "sent", HELD: "held",
  CONFLICT: "conflict", NEEDS_FIXING: "needs_fixing",
});
const UNSENT = new Set([STATES.WAITING, STATES.SENDING, STATES.NEEDS_FIXING]);

/** JSON with sorted keys: the same content always gives the same text (decides "changed since sent"). */
export function canonical(value) {
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  if (value && typeof value === "object") {
    return "{" + Object.keys(value).sort().filter((k) => value[k] !== undefined)
      .map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }
  return JSON.stringify(value === undefined ? null : value);
}

function signature(type, body) {
  return canonical({ type, body });
}

/** A new outbox item for one op. `body` is the op without op_id/seq/type (e.g. {report: …}). */
export function newItem({ id, opId, seq, type, body, photos = [], now, label = "" }) {
  return {
    id, op_id: opId, seq, type, body, photos: [...photos], label,
    state: STATES.WAITING, created_at: now, updated_at: now, attempts: 0, next_at: 0,
    signature: signature(type, body), result: null, sent_at: null,
  };
}

/** The op exactly as POST /api/v1/sync expects it. */
export function toOp(item) {
  return { op_id: item.op_id, seq: item.seq, type: item.type, ...item.body };
}

/** An edited item goes back to waiting. The op_id stays only if the content is unchanged (a reused op_id
 * with other content would be refused as op_id_reused); otherwise a fresh op_id and seq are taken. */
export function editItem(item, body, { newOpId, newSeq, now, photos }) {
  const sig = signature(item.type, body);
  const same = sig === item.signature;
  return {
    ...item, body, photos: photos ? [...photos] : item.photos,
    op_id: same ? item.op_id : newOpId(), seq: same ? item.seq : newSeq(), signature: sig,
    state: STATES.WAITING, attempts: 0, next_at: 0, result: same ? item.result : null, updated_at: now,
  };
}

/** Send again as it is (same op_id): for "needs fixing" items the user chose to retry unchanged. */
export function resend(item, now) {
  return { ...item, state: STATES.WAITING, attempts: 0, next_at: 0, updated_at: now };
}

export function isUnsent(item) {
  return UNSENT.has(item.state);
}

/** Items left "sending" by a crash or a closed tab go back to waiting (the server dedupes by op_id). */
export function recover(items, now) {
  return items.filter((i) => i.state === STATES.SENDING)
    .map((i) => ({ ...i, state: STATES.WAITING, updated_at: now }));
}

/** The next batch: waiting items whose back-off has passed, in seq order, at most `max`. Stops at the
 * first waiting item still backing off so ops never overtake each other. */
export function pickBatch(items, now, max = MAX_BATCH) {
  const waiting = items.filter((i) => i.state === STATES.WAITING).sort((a, b) => a.seq - b.seq);
  const batch = [];
  for (const item of waiting) {
    if ((item.next_at || 0) > now) break;
    batch.push(item);
    if (batch.length >= max) break;
  }
  return batch;
}

/** What the envelope reports about the phone's outbox: unsent count and the oldest unsent time. */
export function outboxSummary(items) {
  const unsent = items.filter(isUnsent);
  const oldest = unsent.reduce((m, i) => (m === null || i.created_at < m ? i.created_at : m), null);
  return { pending: unsent.length, oldest: oldest === null ? null : new Date(oldest).toISOString() };
}

/** The order of one sync run. Ops go before photos: a report's text never waits for its photos (the
 * server lists the links it lacks as missing_photos until the bytes come), so on a weak link the text
 * lands first and the photos follow. Then my cases are pulled, the reference data refreshed, the outbox tidied. */
export function syncSteps() {
  return ["ops", "photos", "pull", "reference", "tidy"];
}

/** Seconds a Retry-After header asks us to wait (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter(value, now = Date.now()) {
  if (value == null || String(value).trim() === "") return null;
  const s = Number(value);
  if (Number.isFinite(s)) return Math.max(0, s);
  const t = Date.parse(value);
  return Number.isFinite(t) ? Math.max(0, (t - now) / 1000) : null;
}

/** Exponential back-off with jitter (half fixed, half random) capped at `capMs`; a server's
 * Retry-After is a floor. `attempt` counts from 1. */
export function backoffMs(attempt, { baseMs = 2000, capMs = 10 * 60 * 1000, retryAfterS = null,
  random = Math.random } = {}) {
  const exp = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  const delay = Math.round(exp / 2 + random() * (exp / 2));
  const floor = retryAfterS != null && Number.isFinite(Number(retryAfterS)) ? Number(retryAfterS) * 1000 : 0;
  return Math.max(delay, floor);
}

function later(item, now, opts) {
  const attempts = (item.attempts || 0) + 1;
  return { ...item, state: STATES.WAITING, attempts, updated_at: now,
    next_at: now + backoffMs(attempts, opts) };
}

/** Apply the per-op results of one answered batch. Returns the updated items (same order as `batch`).
 * An op with no result in the answer stays waiting (sent again next time: the server dedupes). */
export function applyResults(batch, results, now, { random = Math.random } = {}) {
  const byOp = new Map();
  for (const r of results || []) if (r && r.op_id) byOp.set(String(r.op_id).toLowerCase(), r);
  return batch.map((item) => {
    const r = byOp.get(item.op_id.toLowerCase());
    if (!r) return later(item, now, { random });
    const base = { ...item, result: r, updated_at: now };
    switch (r.status) {
      case "applied":
        return { ...base, state: STATES.SENT, sent_at: now };
      case "duplicate":
        return { ...base, state: r.original_status === "conflict" ? STATES.CONFLICT : STATES.SENT, sent_at: now };
      case "held":
        return { ...base, state: STATES.HELD, sent_at: now };
      case "conflict":
        return { ...base, state: STATES.CONFLICT, sent_at: now };
      case "rejected":
        return { ...base, state: STATES.NEEDS_FIXING };
      case "retry":
      default:
        return { ...later(item, now, { random, retryAfterS: r.retry_after_s }), result: r };
    }
  });
}

/** The whole batch failed (no network, 5xx, 429): everything goes back to waiting with a back-off. */
export function failBatch(batch, now, { retryAfterS = null, random = Math.random, error = null } = {}) {
  return batch.map((item) => ({ ...later(item, now, { retryAfterS, random }),
    result: error ? { status: "retry", code: error } : item.result }));
}

/** The envelope answered 4xx as a whole (not 401/413/429): the ops cannot go as they are. */
export function rejectBatch(batch, now, problem) {
  return batch.map((item) => ({ ...item, state: STATES.NEEDS_FIXING, updated_at: now,
    result: { status: "rejected", code: problem?.code || "http_error", detail: problem?.detail || "",
      errors: problem?.errors || null } }));
}

/** When to try again next: the earliest back-off among waiting items, or null. */
export function nextWake(items) {
  const times = items.filter((i) => i.state === STATES.WAITING).map((i) => i.next_at || 0);
  return times.length ? Math.min(...times) : null;
}

/** Sent/held items older than `keepMs` can be dropped from the local outbox (the server has them). */
export function expired(items, now, keepMs = 7 * 24 * 3600 * 1000) {
  return items.filter((i) => (i.state === STATES.SENT || i.state === STATES.HELD) && now - (i.sent_at || i.updated_at) > keepMs);
}

/** Local view of a case after the unsent ops on it: what the phone shows before the server has them. */
export function pendingOnCase(items, caseId) {
  return items.filter((i) => i.body && i.body.case_id === caseId && isUnsent(i)).sort((a, b) => a.seq - b.seq);
}
