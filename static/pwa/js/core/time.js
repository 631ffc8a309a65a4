// Device timestamps with the phone's own UTC offset (the server keeps both clocks).

const pad = (n) => String(Math.abs(Math.trunc(n))).padStart(2, "0");

/** "2026-11-22T08:03:11+08:00" for a Date, in the device's time zone (or the given offset in minutes east). */
export function isoWithOffset(date = new Date(), offsetMin = -date.getTimezoneOffset()) {
  const local = new Date(date.getTime() + offsetMin * 60000);
  const sign = offsetMin >= 0 ? "+" : "-";
  return `${local.getUTCFullYear()}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())}T` +
    `${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())}` +
    `${sign}${pad(offsetMin / 60)}:${pad(offsetMin % 60)}`;
}

/** "3 分钟" / "3 min": how long ago, coarse, for the status bar. */
export function ago(ms, lang = "zh") {
  const s = Math.max(0, Math.round(ms / 1000));
  const [n, u] = s < 60 ? [s, 0] : s < 3600 ? [Math.round(s / 60), 1] : s < 86400 ? [Math.round(s / 3600), 2] : [Math.round(s / 86400), 3];
  const units = lang === "en" ? ["s", "min", "h", "d"] : ["秒", "分钟", "小时", "天"];
  return lang === "en" ? `${n} ${units[u]}` : `${n}${units[u]}`;
}
