// 登录: once per device; a login that expired keeps the username and says how many items wait to be sent.
import * as store from "../db.js";
import { activate, login, Offline, session } from "../api.js";
import { t } from "../i18n.js";
import { outboxSummary } from "../core/outbox.js";
import { refreshReference, requestSync } from "../sync.js";
import { current, homeOf } from "../router.js";
import { $, esc, switchLang, view } from "../ui.js";

export async function render(arg) {
  const activating = arg === "activate";
  const s = await session();
  const pending = outboxSummary(await store.allItems()).pending;
  view().innerHTML = `
    <h2>${esc(t(activating ? "activate_title" : "login"))}</h2>
    ${s?.login_required ? `<p class="banner">${esc(t("relogin", { n: pending }))}</p>` : ""}
    <form id="login-form" autocomplete="on">
      <label class="lbl" for="username">${esc(t("username"))}</label>
      <input type="text" id="username" name="username" autocomplete="username" autocapitalize="none" required value="${esc(s?.user?.username || "")}">
      <label class="lbl" for="password" style="margin-top:10px">${esc(t("password"))}</label>
      ${activating ? `<label class="lbl" for="code" style="margin-top:10px">${esc(t("activation_code"))}</label>
      <input type="text" id="code" name="code" autocomplete="one-time-code" autocapitalize="characters" required>
      <p class="hint">${esc(t("activate_hint"))}</p>` : ""}
      <label class="lbl" for="password" style="margin-top:10px">${esc(t(activating ? "new_password" : "password"))}</label>
      <input type="password" id="password" name="password" autocomplete="${activating ? "new-password" : "current-password"}" minlength="${activating ? 8 : 1}" required>
      <p class="err" id="login-error"></p>
      <button class="primary" type="submit">${esc(t(activating ? "activate_submit" : "login"))}</button>
    </form>
    <p style="margin-top:12px"><a href="${activating ? "#login" : "#login/activate"}" id="activate-link">${esc(t(activating ? "back_to_login" : "activate_link"))}</a></p>
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
    const username = $("#username").value.trim();
    const sess = $("#code") ? await activate(username, $("#code").value.trim(), $("#password").value)
      : await login(username, $("#password").value);
    current.me = sess.user;
    try { await refreshReference(true); } catch (x) { console.warn(x); }
    location.hash = "#" + homeOf(sess.user);
    requestSync("login");
  } catch (x) {
    err.textContent = x instanceof Offline ? t("login_offline") : `${t("login_failed")}: ${x.message}`;
  } finally { btn.disabled = false; }
}

export const actions = { lang: switchLang };
