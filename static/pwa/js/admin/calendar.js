// 日历 (#admin-calendar): the year at a glance (days off, make-up workdays 调休), and a CSV import with a dry run.
import { apiJson } from "../api.js";
import { t } from "../i18n.js";
import { redraw } from "../router.js";
import { $, esc, toast, view } from "../ui.js";
import { problemText } from "../review/common.js";
import { header, send } from "./nav.js";

let year = new Date().getFullYear();

function months(days) {
  const by = new Map(days.map((d) => [d.date, d]));
  let html = "";
  for (let m = 0; m < 12; m++) {
    const first = new Date(Date.UTC(year, m, 1));
    const cells = [];
    for (let i = 1; i < (first.getUTCDay() || 7); i++) cells.push("<span></span>");
    for (let d = 1; d <= new Date(Date.UTC(year, m + 1, 0)).getUTCDate(); d++) {
      const iso = `${year}-${String(m + 1).padStart(2, "0")}-${String(d).padStart(2, "0")}`;
      const day = by.get(iso);
      const cls = day ? (day.workday ? "cal-work" : "cal-off") : "";
      cells.push(`<span class="${cls}"${day ? ` title="${esc(day.name)}" data-date="${iso}"` : ""}>${d}</span>`);
    }
    html += `<div class="cal-month"><h4>${esc(t("month_n", { n: m + 1 }))}</h4><div class="cal-grid">${cells.join("")}</div></div>`;
  }
  return html;
}

export async function render() {
  view().innerHTML = `${await header("admin-calendar")}<h2>${esc(t("tab_admin-calendar"))}</h2>
    <div class="row"><button type="button" data-action="prev">‹</button><strong>${year}</strong><button type="button" data-action="next">›</button>
      <span class="chip cal-off">${esc(t("day_off"))}</span><span class="chip cal-work">${esc(t("make_up_day"))}</span></div>
    <div id="cal-year" class="cal-year"><p class="loading">…</p></div>
    <div class="card"><h3>${esc(t("calendar_import"))}</h3><p class="hint">${esc(t("calendar_import_hint"))}</p>
      <input type="file" id="cal-file" accept=".csv,text/csv"><div class="row">
      <button type="button" data-action="check">${esc(t("dry_run"))}</button><button type="button" data-action="apply">${esc(t("apply"))}</button></div>
      <div id="cal-result"></div></div>`;
  try {
    const cal = await apiJson(`/api/v1/calendar?from=${year}-01-01&to=${year}-12-31`);
    $("#cal-year").innerHTML = (cal.covered ? "" : `<p class="err">${esc(t("calendar_short", { years: cal.missing_years.join("、") }))}</p>`) + months(cal.days);
  } catch (e) { $("#cal-year").innerHTML = `<p class="err" role="alert">${esc(problemText(e))}</p>`; }
}

async function upload(dryRun) {
  const file = $("#cal-file").files[0];
  if (!file) return toast(t("choose_file"));
  try {
    const r = await send(`/api/v1/admin/calendar/import?dry_run=${dryRun}`, "POST", { csv: await file.text() });
    $("#cal-result").innerHTML = `<p data-testid="cal-result">${esc(t("calendar_result", { days: r.days, added: r.added, changed: r.changed, first: r.first, last: r.last }))}${dryRun ? ` · ${esc(t("nothing_written"))}` : ""}</p>`;
    if (!dryRun) { toast(t("saved")); setTimeout(redraw, 800); }
  } catch (e) { $("#cal-result").innerHTML = `<p class="err" role="alert">${esc(problemText(e))}</p>`; }
}

export const actions = {
  prev() { year -= 1; redraw(); },
  next() { year += 1; redraw(); },
  check: () => upload(true),
  apply: () => upload(false),
};
