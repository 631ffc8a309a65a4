// Interface strings: Chinese first, English on request (the same switch sets the API's Accept-Language).
import { lang } from "./api.js";

const S = {
  app: ["网格事件", "Gridcase"],
  login: ["登录", "Log in"], username: ["用户名", "Username"], password: ["密码", "Password"],
  login_failed: ["登录失败", "Login failed"], login_offline: ["没有网络，无法登录。联网后再试。", "No network: log in when you are online."],
  relogin: ["登录已过期，请重新登录。待发送的 {n} 条会在登录后自动发送，不会丢失。", "Your login has expired. Log in again: the {n} unsent items will be sent afterwards; nothing is lost."],
  sync: ["同步", "Sync"], syncing: ["同步中…", "Syncing…"], online: ["在线", "Online"], offline: ["离线", "Offline"],
  pending: ["待发送 {n}", "{n} unsent"], oldest: ["最早 {t}前", "oldest {t} ago"], none_pending: ["全部已发送", "All sent"],
  storage: ["存储 {used}/{quota}", "Storage {used}/{quota}"], last_sync: ["上次同步 {t}前", "synced {t} ago"],
  tab_capture: ["上报", "Report"], tab_tasks: ["任务", "Tasks"], tab_map: ["地图", "Map"], tab_outbox: ["发件箱", "Outbox"], tab_me: ["我的", "Me"],
  capture_title: ["上报事件", "New report"], category: ["类别", "Category"], risk: ["风险等级", "Risk"],
  risk_red: ["红 · 高风险", "Red · high"], risk_yellow: ["黄 · 中风险", "Yellow · medium"], risk_blue: ["蓝 · 低风险", "Blue · low"],
  red: ["红", "red"], yellow: ["黄", "yellow"], blue: ["蓝", "blue"],
  description: ["情况描述", "Description"], description_hint: ["简要说明（可用键盘语音输入）", "A few words (the keyboard's voice input works)"],
  photos: ["照片", "Photos"], add_photos: ["拍照 / 选照片", "Take / pick photos"], processing: ["处理照片中…", "Preparing photos…"],
  location: ["位置", "Location"], locating: ["定位中…", "Locating…"], relocate: ["重新定位", "Locate again"],
  no_gps: ["无法定位：请从列表选择微网格", "No GPS fix: choose the micro-grid from the list"],
  poor_gps: ["定位精度差，请核对微网格", "Poor GPS accuracy: check the micro-grid"],
  micro_grid: ["微网格", "Micro-grid"], mg_auto: ["按位置自动确定", "From the location"],
  mg_found: ["已按定位确定：{name}", "Found from GPS: {name}"], mg_outside: ["定位不在本人网格内", "The fix is outside your grid"],
  photo_gps: ["使用照片位置", "Use the photo's position"],
  on_spot: ["已就地化解（小事不出网格）", "Handled on the spot"],
  save_report: ["保存并上报", "Save and send"], saved: ["已保存到发件箱", "Saved to the outbox"],
  need_category: ["请选择类别", "Choose a category"], need_risk: ["请选择风险等级", "Choose a risk colour"],
  need_where: ["需要定位或选择微网格", "A location or a micro-grid is needed"],
  outbox_title: ["发件箱", "Outbox"], st_waiting: ["待发送", "Waiting"], st_sending: ["发送中", "Sending"],
  st_sent: ["已发送", "Sent"], st_held: ["已发送（等待案件到达）", "Sent (held for its case)"], st_conflict: ["冲突", "Conflict"],
  st_needs_fixing: ["需要修改", "Needs fixing"], grp_fix: ["需要修改", "Needs fixing"], grp_conflict: ["冲突", "Conflicts"],
  grp_waiting: ["待发送", "Waiting"], grp_sent: ["已发送", "Sent"], empty: ["没有内容", "Nothing here"],
  edit: ["修改", "Edit"], resend: ["按原样重发", "Send again as is"], delete: ["删除", "Delete"], save_resend: ["保存并重发", "Save and send"],
  cancel: ["取消", "Cancel"], confirm_delete: ["确定删除这一条？删除后不会发送。", "Delete this item? It will not be sent."],
  server_kept: ["服务器保留了自己的值，已交审核员处理：", "The server kept its value; a reviewer will decide:"],
  field: ["字段", "field"], server_value: ["服务器", "server"], your_value: ["你的", "yours"],
  photo_waiting: ["照片待上传", "photo waiting"], photo_sent: ["照片已上传", "photo uploaded"], photo_failed: ["照片被拒", "photo refused"],
  op_report: ["上报", "Report"], op_note: ["备注", "Note"], op_transition: ["处置", "Action"],
  tasks_title: ["我的任务", "My tasks"], assigned_me: ["交办给我", "Assigned to me"], grid_open: ["本网格未结案件", "Open cases in my grid"],
  my_reports: ["我的上报", "My reports"], not_synced: ["未同步", "not synced"],
  s_reported: ["已上报", "Reported"], s_accepted: ["已受理", "Accepted"], s_assigned: ["已交办", "Assigned"],
  s_in_progress: ["处置中", "In progress"], s_resolved: ["已整改", "Resolved"], s_closed: ["已销号", "Closed"],
  s_returned: ["退回补充", "Returned"], s_rejected: ["不予受理", "Rejected"], s_merged: ["已合并", "Merged"],
  back: ["返回", "Back"], start: ["开始处置", "Start"], resolve: ["标记已整改", "Mark resolved"], add_note: ["添加备注", "Add note"],
  note: ["备注", "Note"], after_photos: ["整改后照片", "After photos"], send: ["保存并发送", "Save and send"],
  resolve_needs: ["需要备注或整改后照片", "A note or an after-photo is needed"], queued: ["已加入发件箱", "Queued"],
  pending_ops: ["待发送操作 {n} 条", "{n} unsent actions"], reported_at: ["上报时间", "Reported"], number: ["编号", "Number"],
  map_title: ["网格地图", "Grid map"], my_position: ["我的位置", "My position"],
  me_title: ["我的", "Me"], device: ["设备", "Device"], language: ["语言 / Language", "Language / 语言"],
  tile_url: ["底图地址（可选）", "Tile URL (optional)"], tile_hint: ["如 https://…/{z}/{x}/{y}.png；留空不加载底图", "e.g. https://…/{z}/{x}/{y}.png; empty: no base map"],
  save: ["保存", "Save"], logout: ["退出登录", "Log out"], logout_unsent: ["还有 {n} 条未发送，退出后需重新登录才能发送。确定退出？", "{n} items are unsent; they wait for the next login. Log out?"],
  persist_ok: ["本机存储已设为持久", "Storage is persistent"], persist_no: ["存储可能被浏览器清理", "The browser may clear storage"],
  refresh_data: ["更新基础数据", "Refresh reference data"], update_ready: ["有新版本", "A new version is ready"], update: ["更新", "Update"],
  role_volunteer: ["志愿者", "Volunteer"], role_grid_worker: ["网格员", "Grid worker"], role_reviewer: ["审核员", "Reviewer"], role_admin: ["管理员", "Admin"],
  flags: ["提示", "Flags"], dismiss: ["知道了", "Got it"], state: ["状态", "State"], errors: ["错误", "Errors"], handled_spot_short: ["就地化解", "on the spot"],
};

export function t(key, vars = {}) {
  const pair = S[key];
  let s = pair ? pair[lang() === "en" ? 1 : 0] : key;
  for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
  return s;
}

export function setLang(l) {
  localStorage.setItem("gridcase.lang", l);
  document.documentElement.lang = l === "en" ? "en" : "zh-CN";
}
