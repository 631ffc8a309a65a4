// The rules part of the admin console: its sub-navigation and the calendar banner every rules page shows when
// the calendar does not know the holidays of the next 90 days.
import { apiJson } from "../api.js";
import { t } from "../i18n.js";
import { esc } from "../ui.js";

export const PAGES = ["admin-categories", "admin-time-limits", "admin-calendar", "admin-regions"];

/** The sub-navigation (the current page marked) and, when coverage is short, the banner. */
export async function header(current) {
  const links = PAGES.map((p) => `<a class="chip" href="#${p}"${p === current ? ' aria-current="page"' : ""}>${esc(t("tab_" + p))}</a>`).join(" ");
  let banner = "";
  try {
    const c = await apiJson("/api/v1/admin/calendar/coverage");
    if (!c.ok) banner = `<div class="banner" role="alert" data-testid="calendar-banner"><span>${esc(t("calendar_short", { years: c.missing_years.join("、") }))}</span><a class="btn" href="#admin-calendar">${esc(t("tab_admin-calendar"))}</a></div>`;
  } catch { /* offline: the page says so itself */ }
  return `<nav class="row admin-nav">${links}</nav>${banner}`;
}

/** A JSON body sent with a method; the problem JSON's message when it fails. */
export const send = (path, method, body) => apiJson(path, { method, body });
