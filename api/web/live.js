import {
  api, requireToken, authHeaders, errorOf, toSignIn, fenToYuan, gramsToKg, fmtInt, fmtOne,
  clock, el, showError, clearError, describe, wireSignOut, markUpdated, fmtRate,
} from "./app.js";
import { platformName, statusName, alertName, figureName, loadLabels } from "./labels.js";
import { renderMinutes, wireLineSwitch } from "./live-chart.js";
import { wirePoster } from "./poster.js";

const TZ = "tz=%2B08:00";
const POLL_MS = 2000;
const ALERTS_POLL_MS = 30000;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;

const token = requireToken();
wireSignOut();

const channelId = new URLSearchParams(window.location.search).get("channel") || "";
const base = `/v1/channels/${encodeURIComponent(channelId)}`;
const statusEl = document.getElementById("live-status");

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

function setValue(id, raw, text) {
  const node = document.getElementById(id);
  if (!node) return;
  node.dataset.value = raw === null || raw === undefined ? "" : String(raw);
  node.textContent = text;
}

function setText(id, text) {
  const node = document.getElementById(id);
  if (node) node.textContent = text;
}

function renderHeading(s) {
  const slug = s.channel_id || channelId;
  const title = s.title || slug;
  setText("channel-title", title);
  setText("channel-id", s.title ? slug : "");
  setText("channel-host", s.host || "");
  document.getElementById("channel-host").hidden = !s.host;
  setText("channel-platform", platformName(s.platform));
  setText("channel-region", [s.district, s.township].filter(Boolean).join(" / ") || "—");
  const badge = document.getElementById("channel-status");
  badge.dataset.status = s.status || "";
  badge.textContent = statusName(s.status);
  badge.hidden = !s.status;
  document.title = `直播大屏 · ${title}`;
}

/** "按近30分钟节奏，预计收官 …单 / ¥…" while the summary carries a projection. */
function renderProjection(s) {
  const node = document.getElementById("projection");
  const orders = s.projected_paid_orders;
  const gmv = s.projected_gmv_fen;
  const known = typeof orders === "number" || typeof gmv === "number";
  node.hidden = !known;
  node.dataset.orders = orders ?? "";
  node.dataset.gmv = gmv ?? "";
  if (!known) return;
  const end = s.scheduled_end ? `（${clock(s.scheduled_end)}）` : "";
  node.replaceChildren(
    el("span", { class: "label", text: `按近30分钟节奏，预计收官${end}` }),
    el("span", { class: "figure", text: `${fmtInt(orders)} 单` }),
    el("span", { class: "sep", text: " / " }),
    el("span", { class: "figure", text: `¥${fenToYuan(gmv)}` }),
  );
}

function renderSummary(s) {
  renderHeading(s);
  renderProjection(s);
  setValue("gmv", s.gmv_fen, fenToYuan(s.gmv_fen));
  setValue("paid-orders", s.paid_orders, fmtInt(s.paid_orders));
  setValue("weight", s.weight_g, gramsToKg(s.weight_g));
  setValue("units", s.units, fmtInt(s.units));
  setValue("viewers-avg", s.viewers_avg, fmtInt(s.viewers_avg));
  setValue("gpm", s.gpm_fen, fenToYuan(s.gpm_fen));
  setValue("refund-rate", s.refund_rate, fmtRate(s.refund_rate));
  setValue("views-total", s.views_total, fmtInt(s.views_total));
  setValue("viewers-peak", s.viewers_peak, fmtInt(s.viewers_peak));
  const pace = s.seconds_per_order;
  setValue("pace", pace, typeof pace === "number" ? `每 ${fmtOne(pace)} 秒一单` : "—");
  setValue("refunded-orders", s.refunded_orders, fmtInt(s.refunded_orders));
  setValue("refund", s.refund_fen, fenToYuan(s.refund_fen));
  setValue("avg-order", s.avg_order_fen, fenToYuan(s.avg_order_fen));
  setValue("net-gmv", s.net_gmv_fen, fenToYuan(s.net_gmv_fen));

  const tbody = document.getElementById("top-skus").tBodies[0];
  tbody.replaceChildren();
  for (const sku of s.top_skus || []) {
    tbody.append(el("tr", { "data-sku": sku.sku ?? "" },
      el("td", { text: sku.name || sku.sku || "—", title: sku.sku ?? "" }),
      el("td", { class: "num", text: fmtInt(sku.units), "data-value": sku.units ?? "" }),
      el("td", { class: "num", text: fenToYuan(sku.gmv_fen), "data-value": sku.gmv_fen ?? "" }),
    ));
  }
}

// ---- alerts -------------------------------------------------------------------

let alertsFromStream = false;

/** Show the firing alerts (newest first, as the API sends them); hide the banner when none fire. */
function renderAlerts(body, source) {
  const list = Array.isArray(body) ? body : (body && Array.isArray(body.alerts) ? body.alerts : null);
  if (!list) return;
  const banner = document.getElementById("alerts");
  banner.dataset.source = source; // "stream" or "poll": which path fed the banner last
  const firing = list.filter((a) => a && a.state === "firing");
  banner.dataset.rules = firing.map((a) => a.rule).join(",");
  banner.replaceChildren(...firing.map((a) => el("div", { class: "alert", "data-rule": a.rule || "" },
    el("strong", { text: `⚠ ${alertName(a.rule)}` }),
    el("span", { class: "when", text: a.since ? ` ${clock(a.since)} 起` : "" }),
    el("span", { text: a.message ? `：${a.message}` : "" }),
  )));
  banner.hidden = firing.length === 0;
}

/** Until the live stream carries alerts itself, ask for them every 30 s. */
async function pollAlerts() {
  while (!alertsFromStream) {
    try {
      const body = await api(`${base}/alerts?${TZ}`);
      if (!alertsFromStream) renderAlerts(body, "poll");
    } catch (err) {
      if (err.status === 401 || err.status === 404) return; // signed out, or a server without alerts
    }
    await new Promise((r) => setTimeout(r, ALERTS_POLL_MS));
  }
}

function render(summary, minutes) {
  if (summary) renderSummary(summary);
  if (minutes) renderMinutes(minutes);
  markUpdated();
}

async function loadOnce() {
  const [summary, minutes] = await Promise.all([
    api(`${base}/summary?${TZ}`),
    api(`${base}/minutes?${TZ}`),
  ]);
  clearError();
  render(summary, minutes);
}

// ---- polling fallback -------------------------------------------------------

let polling = false;
async function poll() {
  polling = true;
  setStatus("polling", "轮询中（每 2 秒）");
  for (;;) {
    try {
      await loadOnce();
    } catch (err) {
      if (err.status === 401) return;
      showError(describe(err));
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

// ---- Server-Sent Events over fetch() ------------------------------------------

/** Parse one SSE block (lines up to a blank line); returns {event, data} or null. */
export function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (line === "" || line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? "" : line.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  return { event, data: data.join("\n") };
}

function handleEvent(ev) {
  if (!ev || ev.event !== "update") return;
  let payload;
  try {
    payload = JSON.parse(ev.data);
  } catch (e) {
    showError(`实时数据解析失败：${e.message}`);
    return;
  }
  clearError();
  render(payload.summary, payload.minutes);
  if (payload.alerts !== undefined && payload.alerts !== null) {
    alertsFromStream = true;
    renderAlerts(payload.alerts, "stream");
  }
}

/** Read the stream until it ends. Returns "ended", or "fallback" when polling should take over. */
async function stream() {
  const ctrl = new AbortController();
  const resp = await fetch(`${base}/live?${TZ}`, {
    headers: authHeaders(token, { Accept: "text/event-stream" }),
    cache: "no-store",
    signal: ctrl.signal,
  });
  if (resp.status === 401) {
    toSignIn();
    return "stop";
  }
  if (!resp.ok) {
    const err = await errorOf(resp);
    showError(`${describe(err)}；改为每 2 秒轮询`);
    return "fallback";
  }
  if (!resp.body || !resp.body.getReader) return "fallback";
  setStatus("live", "实时");
  const reader = resp.body.getReader();
  const decoder = new TextDecoder("utf-8");
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    // events are separated by a blank line (\n\n, \r\n\r\n or \r\r)
    for (;;) {
      const m = /\r\n\r\n|\n\n|\r\r/.exec(buf);
      if (!m) break;
      const block = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      handleEvent(parseEvent(block));
    }
  }
  buf += decoder.decode();
  if (buf.trim()) handleEvent(parseEvent(buf));
  return "ended";
}

async function live() {
  let backoff = BACKOFF_MIN_MS;
  for (;;) {
    let outcome;
    const started = Date.now();
    try {
      outcome = await stream();
    } catch (err) {
      outcome = "error";
      showError(`实时连接中断：${(err && err.message) || err}；${Math.round(backoff / 1000)} 秒后重连`);
    }
    if (outcome === "stop") return;
    if (outcome === "fallback") {
      poll();
      return;
    }
    // a stream that lasted a while was healthy: start the backoff over
    if (Date.now() - started > 10000) backoff = BACKOFF_MIN_MS;
    setStatus("reconnecting", "重连中…");
    await new Promise((r) => setTimeout(r, backoff + Math.random() * 250));
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
  }
}

async function main() {
  wireLineSwitch();
  wirePoster(base, channelId);
  if (!channelId) {
    showError("缺少参数 channel，例如 live.html?channel=频道ID");
    setStatus("error", "未指定直播间");
    return;
  }
  await loadLabels();
  // the tiles' names from the served table (api/labels.py FIGURES): one wording everywhere
  for (const label of document.querySelectorAll(".kpi .label[data-figure]")) {
    label.textContent = figureName(label.dataset.figure);
  }
  try {
    await loadOnce();
  } catch (err) {
    if (err.status === 401) return;
    showError(describe(err));
    if (err.status === 404) {
      setStatus("error", "直播间不存在");
      return;
    }
  }
  pollAlerts();
  if (!polling) live();
}

main();
