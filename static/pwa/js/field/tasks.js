// 任务: the cases assigned to me, the open cases of my grid (not for volunteers), and my own reports; red first.
// Each row says its deadline in words (临期 · 剩 3 小时) and, for a returned report, what the reviewer asked.
import { t } from "../i18n.js";
import { pendingOnCase } from "../core/outbox.js";
import { current } from "../router.js";
import { deadlineLine, esc, riskChip, stateChip, view } from "../ui.js";
import { unseenTasks } from "../watch.js";
import { categoryName, effectiveState, localCases, OPEN } from "./data.js";

async function caseRow(c, items, fresh) {
  const pending = pendingOnCase(items, c.id);
  const state = effectiveState(c, pending);
  const asked = state === "returned" && c.return_reason;
  return `<a class="card" href="#case/${esc(c.id)}" data-case="${esc(c.id)}">
    <div class="row"><strong class="grow">${esc(await categoryName(c.category))}</strong>${fresh.has(c.id) ? `<span class="chip flag" data-testid="new-task">${esc(t("new_chip"))}</span> ` : ""}${riskChip(c.risk_level)} ${stateChip(state)}</div>
    <div>${esc((c.description || "").slice(0, 60))}</div>
    ${asked ? `<div class="warn" data-testid="return-reason">${esc(t("return_reason"))}：${esc(c.return_reason)}</div>` : ""}
    ${state === c.state ? deadlineLine(c) : ""}
    <div class="meta">${esc(c.number || t("not_synced"))}${c.local ? ` · ${esc(t("st_" + c.item_state))}` : ""}${pending.length ? ` · ${esc(t("pending_ops", { n: pending.length }))}` : ""}</div></a>`;
}

export async function render() {
  const me = current.me;
  const { cases, items } = await localCases();
  const rank = { red: 0, yellow: 1, blue: 2 };
  cases.sort((a, b) => (rank[a.risk_level] ?? 3) - (rank[b.risk_level] ?? 3) || String(b.reported_at).localeCompare(String(a.reported_at)));
  const mine = cases.filter((c) => c.assignee && c.assignee === me?.username && OPEN.has(c.state));
  const grid = me?.role === "volunteer" ? [] : cases.filter((c) => !mine.includes(c) && !c.local && OPEN.has(c.state) && c.reporter !== me?.username);
  const reported = cases.filter((c) => c.reporter === me?.username);
  const fresh = new Set((await unseenTasks()).map((c) => c.id));
  const section = async (key, list) => `<section data-group="${key}"><h3>${esc(t(key))} (${list.length})</h3>${list.length ? (await Promise.all(list.map((c) => caseRow(c, items, fresh)))).join("") : `<p class="hint">${esc(t("empty"))}</p>`}</section>`;
  view().innerHTML = `<h2>${esc(t("tasks_title"))}</h2>` + (await section("assigned_me", mine)) +
    (me?.role === "volunteer" ? "" : await section("grid_open", grid)) + (await section("my_reports", reported));
}
