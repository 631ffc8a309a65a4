// 管理 (#admin): the admin console's index, one card per view. Each view is its own route and module (js/admin/),
// loaded only when a reviewer or admin opens it. Reviewers manage the grid workers and volunteers of their township.
import { t } from "../i18n.js";
import { current } from "../router.js";
import { esc, view } from "../ui.js";

/** [route, label key, admins only]: other admin views add their line here. */
export const VIEWS = [["admin-people", "admin_people"], ["admin-audit", "admin_audit"],
  ["admin-categories", "tab_admin-categories", true], ["admin-time-limits", "tab_admin-time-limits", true],
  ["admin-calendar", "tab_admin-calendar", true], ["admin-regions", "tab_admin-regions", true]];

export async function render() {
  view().innerHTML = `<h2>${esc(t("admin_title"))}</h2>
    ${VIEWS.filter(([, , adminOnly]) => !adminOnly || current.me?.role === "admin").map(([route, key]) => `<a class="card" style="display:block" href="#${route}" data-testid="${route}">${esc(t(key))}</a>`).join("")}`;
}
