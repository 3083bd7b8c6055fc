// 数据接入 page (bureau scope): GET /v1/connectors, one row per shop, refreshed every 10 s.
// A shop whose last push is old, whose reconciliation lags or that shows an error stands out.

import { api, requireToken, fmtInt, el, showError, describe, wireSignOut, markUpdated } from "./app.js";
import { platformName, loadLabels } from "./labels.js";

requireToken();
wireSignOut();

const REFRESH_MS = 10_000;
const when = new Intl.DateTimeFormat("zh-CN", {
  timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false,
});

function at(text) {
  if (!text) return "—";
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? String(text) : when.format(d);
}

// last_error is the API's text for programs (connectors/reconcile.py, connectors/worker.py
// write it as "<where>: <what>"); the page says where and what happened in Chinese and
// keeps the platform's own words (an HTTP status, an API name) after it.
const ERROR_WORDS = [
  [/^reconciliation: refused event (.*)$/s, "对账：事件未通过校验 $1"],
  [/^reconciliation: (.*)$/s, "对账失败：$1"],
  [/^push worker: refused event (.*)$/s, "推送：事件未通过校验 $1"],
  [/^push worker: order (.+?): unreadable: (.*)$/s, "推送：订单 $1 的详情无法解析：$2"],
  [/^push worker: order (.+?): (.*)$/s, "推送：平台拒绝查询订单 $1：$2"],
  [/^push worker: (.*)$/s, "推送：平台暂不可用：$1"],
];

function errorWords(text) {
  for (const [pattern, words] of ERROR_WORDS) if (pattern.test(text)) return text.replace(pattern, words);
  return text;
}

function row(c) {
  const error = c.last_error ? `${at(c.last_error_at)} ${errorWords(c.last_error)}` : "—";
  return el("tr", { "data-shop": `${c.platform}:${c.shop_id}`, class: c.last_error ? "warn" : "" },
    el("td", { "data-label": "平台", text: platformName(c.platform) }),
    el("td", { "data-label": "店铺", text: String(c.shop_id) }),
    el("td", { "data-label": "最近推送", text: at(c.last_push_at) }),
    el("td", { "data-label": "推送数", class: "num", text: fmtInt(c.pushes) }),
    el("td", { "data-label": "签名错误", class: "num", text: fmtInt(c.bad_signatures) }),
    el("td", { "data-label": "已对账至", text: at(c.last_reconciled_to) }),
    el("td", { "data-label": "补回步骤", class: "num", text: fmtInt(c.recovered_steps) }),
    el("td", { "data-label": "最近错误", class: "error-text", text: error, title: c.last_error || "" }),
  );
}

async function load() {
  try {
    const body = await api("/v1/connectors");
    const list = body.connectors || [];
    const table = document.getElementById("connectors-table");
    table.tBodies[0].replaceChildren(...list.map(row));
    table.dataset.count = String(list.length);
    document.getElementById("connectors-empty").hidden = list.length > 0;
    markUpdated();
  } catch (err) {
    if (err.status === 403) showError("数据接入仅对市级（全部范围）账号开放");
    else if (err.status !== 401) showError(describe(err));
  }
}

async function main() {
  await loadLabels();
  await load();
  setInterval(load, REFRESH_MS);
}

main();
