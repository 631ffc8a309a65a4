// 登录: once per device; a login that expired keeps the username and says how many items wait to be sent.
import * as store from "../db.js";
import { login, Offline, session } from "../api.js";
import { t } from "../i18n.js";
import { outboxSummary } from "../core/outbox.js";
import { refreshReference, requestSync } from "../sync.js";
import { current, homeOf } from "../router.js";
import { $, esc, switchLang, view } from "../ui.js";

export async function render() {
  const s = await session();
  const pending = outboxSummary(await store.allItems()).pending;
  view().innerHTML = `
    <h2>${esc(t("login"))}</h2>
    ${s?.login_required ? `<p class="banner">${esc(t("relogin", { n: pending }))}</p>` : ""}
    <form id="login-form" autocomplete="on">
      <label class="lbl" for="username">${esc(t("username"))}</label>
      <input type="text" id="username" name="username" autocomplete="username" autocapitalize="none" required value="${esc(s?.user?.username || "")}">
      <label class="lbl" for="password" style="margin-top:10px">${esc(t("password"))}</label>
      <input type="password" id="password" name="password" autocomplete="current-password" required>
      <p class="err" id="login-error"></p>
      <button class="primary" type="submit">${esc(t("login"))}</button>
    </form>
    <p class="row" style="margin-top:16px"><button type="button" data-action="lang" data-lang="zh">中文</button><button type="button" data-action="lang" data-lang="en">English</button></p>`;
  $("#login-form").addEventListener("submit", submit);
}

async function submit(e) {
  e.preventDefault();
  const err = $("#login-error");
  err.textContent = "";
  const btn = e.target.querySelector("button[type=submit]");
  btn.disabled = true;
  try {
    const sess = await login($("#username").value.trim(), $("#password").value);
    current.me = sess.user;
    try { await refreshReference(true); } catch (x) { console.warn(x); }
    location.hash = "#" + homeOf(sess.user);
    requestSync("login");
  } catch (x) {
    err.textContent = x instanceof Offline ? t("login_offline") : `${t("login_failed")}: ${x.message}`;
  } finally { btn.disabled = false; }
}

export const actions = { lang: switchLang };
