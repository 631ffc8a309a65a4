// 发件箱: every item by state — needs fixing (the server's words, 修改 / 按原样重发 / 删除), conflicts (server
// and field values; 知道了), waiting (with the upload progress of its photos), sent.
import * as store from "../db.js";
import { lang } from "../api.js";
import { t } from "../i18n.js";
import { ago } from "../core/time.js";
import { resend, STATES } from "../core/outbox.js";
import { prunePhotos, requestSync, status as syncStatus } from "../sync.js";
import { redraw } from "../router.js";
import { bytes, esc, itemChip, view } from "../ui.js";

export async function render() {
  const items = (await store.allItems()).sort((a, b) => b.seq - a.seq);
  const photos = new Map((await store.allPhotos()).map((p) => [p.sha256, p]));
  const groups = [
    ["grp_fix", items.filter((i) => i.state === STATES.NEEDS_FIXING), "fix"],
    ["grp_conflict", items.filter((i) => i.state === STATES.CONFLICT), "conflict"],
    ["grp_waiting", items.filter((i) => i.state === STATES.WAITING || i.state === STATES.SENDING), "waiting"],
    ["grp_sent", items.filter((i) => i.state === STATES.SENT || i.state === STATES.HELD), "sent"],
  ];
  view().innerHTML = `<h2>${esc(t("outbox_title"))}</h2>` + groups.map(([title, list, key]) =>
    `<section data-group="${key}"><h3>${esc(t(title))} (${list.length})</h3>${list.length ? list.map((i) => itemCard(i, photos)).join("") : `<p class="hint">${esc(t("empty"))}</p>`}</section>`).join("");
}

/** One outbox item: what it is, its state, its photos' upload, and what the server said. */
export function itemCard(i, photos) {
  const r = i.result || {};
  const kind = i.type === "report.create" ? t("op_report") : i.type === "case.note" ? t("op_note") : `${t("op_transition")} · ${t(i.body.action) || i.body.action}`;
  const ph = (i.photos || []).map((sha) => {
    const p = photos.get(sha);
    const st = syncStatus.sending.has(sha) ? "sending" : p?.state || "sent";
    const frac = syncStatus.progress?.sha256 === sha ? syncStatus.progress.fraction : p?.progress || 0;
    return `<div class="meta">${esc(st === "sent" ? t("photo_sent") : st === "failed" ? t("photo_failed") : t("photo_waiting"))} · ${bytes(p?.size)}
      ${st === "sending" ? `<div class="progress" role="progressbar" aria-valuenow="${Math.round(frac * 100)}"><span style="width:${Math.round(frac * 100)}%"></span></div>` : ""}
      ${p?.error?.detail ? `<span class="err"> ${esc(p.error.detail)}</span>` : ""}</div>`;
  }).join("");
  let detail = "";
  if (i.state === STATES.NEEDS_FIXING) {
    detail = `<p class="err" data-testid="reject-detail">${esc(r.detail || r.code)} <code>${esc(r.code)}</code></p>`;
    if (r.errors) detail += `<ul class="errors">${Object.entries(r.errors).map(([f, m]) => `<li><code>${esc(f)}</code>: ${esc([].concat(m).join("; "))}</li>`).join("")}</ul>`;
    detail += `<div class="actions"><a class="btn" href="#fix/${esc(i.id)}">${esc(t("edit"))}</a>
      <button type="button" data-action="resend" data-id="${esc(i.id)}">${esc(t("resend"))}</button>
      <button type="button" class="danger" data-action="delete-item" data-id="${esc(i.id)}">${esc(t("delete"))}</button></div>`;
  } else if (i.state === STATES.CONFLICT) {
    detail = `<p>${esc(t("server_kept"))}</p><ul>${(r.conflicts || []).map((c) => `<li><code>${esc(c.field)}</code>: ${esc(t("server_value"))} <strong>${esc(fmt(c.server, c.field))}</strong>, ${esc(t("your_value"))} <strong>${esc(fmt(c.client, c.field))}</strong></li>`).join("")}</ul>
      <div class="actions"><button type="button" data-action="dismiss" data-id="${esc(i.id)}">${esc(t("dismiss"))}</button></div>`;
  } else if (i.state === STATES.WAITING && r.code) {
    detail = `<p class="meta">${esc(r.code)}${i.next_at > Date.now() ? ` · ${esc(ago(i.next_at - Date.now(), lang()))}` : ""}</p>`;
  }
  if (r.flags?.length) detail += `<p class="meta">${esc(t("flags"))}: ${esc(r.flags.join(", "))}</p>`;
  return `<div class="card" data-item="${esc(i.id)}" data-state="${esc(i.state)}">
    <div class="row"><strong class="grow">${esc(kind)}</strong>${itemChip(i.state)}</div>
    <div>${esc(i.label || "")}</div>
    <div class="meta">${new Date(i.created_at).toLocaleString(lang() === "en" ? "en" : "zh-CN")} · #${i.seq}</div>${ph}${detail}</div>`;
}

function fmt(v, field) {
  if (field === "state" && typeof v === "string") return t("s_" + v);
  if (field === "risk_level" && typeof v === "string") return t(v);
  return v && typeof v === "object" ? JSON.stringify(v) : String(v ?? "—");
}

/** The buttons of an item card (here and on 修改). */
export const cardActions = {
  async resend(el) {
    const i = await store.getItem(el.dataset.id);
    if (i) { await store.putItems([resend(i, Date.now())]); requestSync("resend"); redraw(); }
  },
  async "delete-item"(el) {
    if (!confirm(t("confirm_delete"))) return;
    const gone = await store.getItem(el.dataset.id);
    await store.deleteItem(el.dataset.id);
    await prunePhotos(null, gone?.photos || []);
    redraw();
  },
  async dismiss(el) {
    await store.deleteItem(el.dataset.id);
    await prunePhotos();
    redraw();
  },
};

export const actions = cardActions;
