// The live screen's per-minute chart: GMV as bars on the left axis, and on the right axis
// one line, paid orders or online viewers (the 直播大屏 of 抖音/视频号 shows 在线人数 beside
// sales). One line at a time, chosen with the 支付订单 / 在线人数 switch: a third axis does
// not fit a phone's 390 px, and two lines on one axis would flatten the orders.

import { hhmm, makeChart } from "./app.js";

const LINES = {
  orders: { name: "支付订单", unit: "单", color: "#4fd1c5", value: (r) => r.paid_orders || 0, connect: false },
  // a minute without stream stats has viewers_peak null: the line bridges it
  viewers: { name: "在线人数", unit: "人", color: "#b197fc", value: (r) => r.viewers_peak ?? null, connect: true },
};

let chart = null;
let rows = [];
let line = "orders";

function draw() {
  if (!chart) chart = makeChart(document.getElementById("chart"));
  if (!chart) return;
  const l = LINES[line];
  const axis = { color: "#cfd8e3" };
  chart.setOption({
    backgroundColor: "transparent",
    textStyle: { color: "#cfd8e3", fontSize: 14 },
    tooltip: { trigger: "axis" },
    legend: { data: ["成交额（元）", l.name], textStyle: axis, top: 0 },
    // on a phone the legend spans the width: keep the axis names below it
    grid: { left: 10, right: 10, top: window.innerWidth < 600 ? 60 : 44, bottom: 10, containLabel: true },
    xAxis: { type: "category", data: rows.map((r) => hhmm(r.minute)), axisLabel: axis },
    yAxis: [
      { type: "value", name: "元", axisLabel: axis, splitLine: { lineStyle: { color: "#2a3a55" } } },
      { type: "value", name: l.unit, minInterval: 1, axisLabel: axis, splitLine: { show: false } },
    ],
    series: [
      { name: "成交额（元）", type: "bar", yAxisIndex: 0, itemStyle: { color: "#f5a623" },
        data: rows.map((r) => (r.gmv_fen || 0) / 100) },
      { id: "line", name: l.name, type: "line", yAxisIndex: 1, smooth: true, connectNulls: l.connect,
        showSymbol: rows.length < 40, itemStyle: { color: l.color }, data: rows.map(l.value) },
    ],
  }, { notMerge: false }); // merged by index: a new minute animates a bar, not the whole chart
  document.getElementById("chart").dataset.line = line;
}

/** Draw the minutes of a `/minutes` answer (or an SSE payload's). */
export function renderMinutes(m) {
  rows = (m && m.minutes) || [];
  draw();
}

/** Wire the 支付订单 / 在线人数 switch above the chart. */
export function wireLineSwitch() {
  const group = document.getElementById("chart-line");
  if (!group) return;
  for (const btn of group.querySelectorAll("button[data-line]")) {
    btn.addEventListener("click", () => {
      line = LINES[btn.dataset.line] ? btn.dataset.line : "orders";
      for (const b of group.querySelectorAll("button[data-line]")) {
        b.setAttribute("aria-pressed", String(b === btn));
      }
      draw();
    });
  }
}
