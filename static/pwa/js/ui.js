// What every view draws with: escaping, element look-ups, the chips that carry a word for each colour, the
// toast, option lists and the click delegation of a view. Nothing here touches the DOM on import (node tests it).
import { setLang, t } from "./i18n.js";
import { redraw } from "./router.js";

const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text made safe for HTML and for attribute values in double or single quotes; null and undefined give "". */
export const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ENTITIES[c]);

export const $ = (sel, el = document) => el.querySelector(sel);
/** The <main> every view draws into. */
export const view = () => $("#view");

/** A short message at the bottom of the screen for 3.5 s. */
export function toast(msg) {
  const el = $("#toast");
  el.innerHTML = `<span>${esc(msg)}</span>`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.innerHTML = ""; }, 3500);
}

/** A byte count for people: "1.5 MB"; "?" when unknown. */
export function bytes(n) {
  if (!Number.isFinite(n)) return "?";
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(n < 10 && i ? 1 : 0)} ${u[i]}`;
}

// ------------------------------------------------------------------------------------------ chips (word, never colour alone)

export const riskChip = (r) => (r ? `<span class="chip ${esc(r)}">${esc(t(r))}</span>` : "");
export const stateChip = (s) => `<span class="chip st">${esc(t("s_" + s))}</span>`;
/** An outbox item's state. */
export const itemChip = (s) => `<span class="chip ${esc(s)}">${esc(t("st_" + s))}</span>`;
/** The time-limit light: 正常 / 临期 / 超期. */
export const lightChip = (l) => (l ? `<span class="chip light-${esc(l)}" data-light="${esc(l)}"><span class="dot" aria-hidden="true"></span>${esc(t("light_" + l))}</span>` : "");
/** The light of a case at ``now`` from its running stage's warn_at and due_at (what the phone holds offline). */
export function lightAt(c, now = Date.now()) {
  if (!c?.due_at) return null;
  if (now >= Date.parse(c.due_at)) return "red";
  return c.warn_at && now >= Date.parse(c.warn_at) ? "yellow" : "green";
}
/** A span of time in words: "3 小时", "2 天", "25 分钟". */
export function span(ms) {
  const m = Math.max(1, Math.round(Math.abs(ms) / 60000));
  if (m < 120) return t("n_minutes", { n: m });
  const h = Math.round(m / 60);
  return h < 48 ? t("n_hours", { n: h }) : t("n_days", { n: Math.round(h / 24) });
}
/** The deadline where work is done: light word, time left (or overdue by), and which clock counts.
 * ``leftMinutes`` (the server's, on the stage's own clock) wins over the wall-clock time to ``due_at``. */
export function deadlineLine(c, { now = Date.now(), leftMinutes = null } = {}) {
  const light = c?.light || lightAt(c, now);
  if (!light || !c.due_at) return "";
  const left = leftMinutes != null ? leftMinutes * 60000 : Date.parse(c.due_at) - now;
  const words = [t("stage_" + c.stage), left > 0 ? t("left", { t: span(left) }) : t("overdue_by", { t: span(left) })];
  if (c.clock) words.push(t("clock_" + c.clock));
  return `<span class="deadline" data-testid="deadline">${lightChip(light)} ${esc(words.join(" · "))}</span>`;
}
export const flagChips = (flags) => (flags || []).map((f) => `<span class="chip flag">${esc(t("flag_" + f) === "flag_" + f ? f : t("flag_" + f))}</span>`).join(" ");

/** An <option>, selected when it is the current value. */
export const opt = (value, label, cur) => `<option value="${esc(value)}"${String(cur ?? "") === String(value) ? " selected" : ""}>${esc(label)}</option>`;

/** Marks one button of a group as pressed (aria-pressed), the others not. */
export function setPressed(el) {
  for (const b of el.parentElement.querySelectorAll("[aria-pressed]")) b.setAttribute("aria-pressed", String(b === el));
}

// ------------------------------------------------------------------------------------------ actions

/**
 * Click delegation: the [data-action] element under the click, handed to actions[its name](el, event).
 * Returns the handler's promise, or undefined when the click is not an action of this table.
 */
export function dispatch(event, actions) {
  const el = event.target?.closest?.("[data-action]");
  const fn = el && actions && Object.hasOwn(actions, el.dataset.action) ? actions[el.dataset.action] : null;
  return fn ? fn(el, event) : undefined;
}

/** The 中文 / English buttons (login and 我的). */
export function switchLang(el) { setLang(el.dataset.lang); redraw(); }
