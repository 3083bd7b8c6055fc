// 区域概览: every township (or district) the token covers, for a day or a range, with the
// channels ranked by GMV. The range lives in the URL (?level=&from=&to=, days in +08:00,
// both inclusive) so a cadre can bookmark or share "长街镇 today".

import {
  api, requireToken, fenToYuan, gramsToKg, fmtInt, el, qs, today8, addDays, dayStart, showError, clearError,
  describe, wireSignOut, markUpdated,
} from "./app.js";

requireToken();
wireSignOut();

const params = new URLSearchParams(window.location.search);
const state = {
  level: params.get("level") === "district" ? "district" : "township",
  from: params.get("from") || "",
  to: params.get("to") || "",
};
if (!params.has("from") && !params.has("to") && params.get("all") !== "1") {
  state.from = today8();
  state.to = state.from;
}

const fromInput = document.getElementById("regions-from");
const toInput = document.getElementById("regions-to");

function regionName(r, level) {
  if (level === "district") return r.district || "（未知区县）";
  return [r.district, r.township || "（未知乡镇）"].filter(Boolean).join(" / ");
}

function setFigure(id, raw, text) {
  const node = document.getElementById(id);
  node.dataset.value = raw === null || raw === undefined ? "" : String(raw);
  node.textContent = text;
}

function sum(regions, field) {
  return regions.reduce((acc, r) => acc + (typeof r[field] === "number" ? r[field] : 0), 0);
}

function renderTotals(regions) {
  setFigure("total-channels", sum(regions, "channels"), fmtInt(sum(regions, "channels")));
  setFigure("total-live", sum(regions, "live_channels"), fmtInt(sum(regions, "live_channels")));
  setFigure("total-orders", sum(regions, "paid_orders"), fmtInt(sum(regions, "paid_orders")));
  setFigure("total-gmv", sum(regions, "gmv_fen"), fenToYuan(sum(regions, "gmv_fen")));
  setFigure("total-kg", sum(regions, "weight_g"), gramsToKg(sum(regions, "weight_g")));
  setFigure("total-refund", sum(regions, "refund_fen"), fenToYuan(sum(regions, "refund_fen")));
}

// name: places the cell in a phone's card (style.css); label: names the figure there
const num = (value, text, name, label) =>
  el("td", { class: `num ${name}`, text, "data-value": value ?? "", "data-label": label });

function renderTable(regions, level) {
  const table = document.getElementById("regions-table");
  table.dataset.level = level;
  const rows = [...regions].sort((a, b) => (b.gmv_fen || 0) - (a.gmv_fen || 0));
  table.tBodies[0].replaceChildren(...rows.map((r) => el("tr", { "data-region": regionName(r, level) },
    el("th", { scope: "row", class: "name", text: regionName(r, level) }),
    num(r.gmv_fen, fenToYuan(r.gmv_fen), "gmv", "成交额（元）"),
    num(r.paid_orders, fmtInt(r.paid_orders), "orders", "支付订单"),
    num(r.channels, fmtInt(r.channels), "channels", "直播间"),
    num(r.live_channels, fmtInt(r.live_channels), "live", "直播中"),
    num(r.weight_g, gramsToKg(r.weight_g), "weight", "重量（kg）"),
    num(r.refund_fen, fenToYuan(r.refund_fen), "refund", "退款（元）"),
  )));
  document.getElementById("regions-empty").hidden = rows.length > 0;
}

function renderRanking(regions, level) {
  const all = [];
  for (const r of regions) {
    const where = level === "district" ? (r.district || "—") : (r.township || r.district || "—");
    for (const c of r.top_channels || []) all.push({ ...c, region: where });
  }
  all.sort((a, b) => (b.gmv_fen || 0) - (a.gmv_fen || 0));
  const tbody = document.getElementById("regions-ranking").tBodies[0];
  tbody.replaceChildren(...all.map((c, i) => {
    const id = String(c.channel_id);
    const name = el("td", { class: "name" },
      el("a", { href: `live.html?channel=${encodeURIComponent(id)}`, text: c.title || id }));
    return el("tr", { "data-channel": id },
      el("td", { class: "num rank", text: String(i + 1) }),
      name,
      num(c.gmv_fen, fenToYuan(c.gmv_fen), "gmv", "成交额（元）"),
      num(c.paid_orders, fmtInt(c.paid_orders), "orders", "支付订单"),
      el("td", { class: "nowrap where", text: c.region }),
    );
  }));
}

function syncControls() {
  fromInput.value = state.from;
  toInput.value = state.to;
  for (const b of document.querySelectorAll("#regions-level button")) {
    b.setAttribute("aria-pressed", String(b.dataset.level === state.level));
  }
  const range = !state.from && !state.to ? "全部日期"
    : state.from === state.to ? state.from : `${state.from || "最早"} 至 ${state.to || "今"}`;
  document.getElementById("regions-range").textContent =
    `${state.level === "district" ? "按区县" : "按乡镇"} · ${range}（北京时间）`;
  const url = new URLSearchParams({ level: state.level });
  if (state.from) url.set("from", state.from);
  if (state.to) url.set("to", state.to);
  if (!state.from && !state.to) url.set("all", "1");
  window.history.replaceState(null, "", `?${url.toString()}`);
}

async function load() {
  syncControls();
  const query = {
    level: state.level,
    from: state.from ? dayStart(state.from) : "",
    to: state.to ? dayStart(addDays(state.to, 1)) : "",
    tz: "+08:00",
  };
  try {
    const body = await api(`/v1/regions?${qs(query)}`);
    clearError();
    const regions = body.regions || [];
    const level = body.level || state.level;
    renderTotals(regions);
    renderTable(regions, level);
    renderRanking(regions, level);
    markUpdated();
  } catch (err) {
    if (err.status !== 401) showError(describe(err));
  }
}

document.getElementById("regions-controls").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.from = fromInput.value;
  state.to = toInput.value;
  load();
});
for (const b of document.querySelectorAll("#regions-level button")) {
  b.addEventListener("click", () => {
    state.level = b.dataset.level;
    load();
  });
}
document.getElementById("regions-today").addEventListener("click", () => {
  state.from = today8();
  state.to = state.from;
  load();
});
document.getElementById("regions-all").addEventListener("click", () => {
  state.from = "";
  state.to = "";
  load();
});

load();
