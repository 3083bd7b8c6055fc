// 商务局 page: four views over /v1/pivot, each with its CSV and Excel download.
// Keys stay slugs/ids in the API; every label shown (platform names, firm names) is
// translated here, in tables, legends and axes alike.

import {
  api, requireToken, fenToYuan, fmtInt, el, showError, describe, wireSignOut, markUpdated, makeChart,
  download,
} from "./app.js";
import { platformName, dimensionName, measureName, booleanName, loadLabels } from "./labels.js";

requireToken();
wireSignOut();

const TOP_FIRMS = 20;

// kind: "pivot" (rows × cols table + stacked bars), "trend" (periods × platforms, lines),
// "top" (firms ranked by their total, top 20, horizontal bars).
const VIEWS = [
  { prefix: "onboarding", dataset: "onboarding", kind: "pivot" },
  { prefix: "trend", dataset: "onboarding", kind: "trend", cols: "platform" },
  { prefix: "domestic", dataset: "domestic_sales", kind: "pivot" },
  { prefix: "live", dataset: "live_monitor", kind: "pivot" },
  { prefix: "firms", dataset: "domestic_sales", kind: "top", rows: "firm_id" },
];

function keyLabel(dim, value, labels) {
  if (dim === "export_oriented" || typeof value === "boolean") {
    const yesNo = booleanName(value);
    if (yesNo) return yesNo;
  }
  if (value === null || value === undefined || value === "") return "（空）";
  if (dim === "platform") return platformName(value);
  if (dim === "firm_id") return ((labels || {}).firm_id || {})[value] || String(value);
  return String(value);
}

function tupleLabel(dims, key, labels) {
  return dims.map((d, i) => keyLabel(d, key[i], labels)).join(" / ");
}

function fmtMeasure(measure, v) {
  return measure.endsWith("_fen") ? fenToYuan(v) : fmtInt(v);
}

function control(v, name) {
  const node = document.getElementById(`${v.prefix}-${name}`);
  return node ? node.value : "";
}

function pivotUrl(v, extra = {}) {
  const params = new URLSearchParams();
  params.set("dataset", v.dataset);
  params.set("rows", v.rows || control(v, "rows"));
  const cols = v.cols || control(v, "cols");
  if (cols && cols !== "none") params.set("cols", cols);
  params.set("measure", control(v, "measure"));
  const from = control(v, "from");
  const to = control(v, "to");
  if (from) params.set("from", `${from}T00:00:00+08:00`);
  if (to) params.set("to", `${to}T00:00:00+08:00`);
  params.set("tz", "+08:00");
  for (const [k, val] of Object.entries(extra)) params.set(k, val);
  return `/v1/pivot?${params.toString()}`;
}

function note(v, message) {
  const node = document.getElementById(`${v.prefix}-note`);
  if (!node) {
    showError(message);
    return;
  }
  node.textContent = message || "";
  node.hidden = !message;
}

function renderPivotTable(table, data) {
  const measure = data.measure;
  const rows = data.rows || [];
  const cols = data.cols || [];
  const labels = data.labels;
  const rowKeys = data.row_keys || [];
  const colKeys = data.col_keys || [];
  const cells = data.cells || [];
  table.dataset.total = data.total === null || data.total === undefined ? "" : String(data.total);
  table.dataset.measure = measure || "";

  const rowHead = rows.map((d) => dimensionName(d)).join(" / ") || "合计";
  const colHeads = colKeys.map((ck) => (cols.length ? tupleLabel(cols, ck, labels) : measureName(measure)));
  const thead = el("thead", {}, el("tr", {},
    el("th", { text: rowHead, scope: "col" }),
    ...colHeads.map((h) => el("th", { class: "num", text: h, scope: "col" })),
    el("th", { class: "num total", text: "合计", scope: "col" }),
  ));
  const tbody = el("tbody");
  rowKeys.forEach((rk, i) => {
    const tr = el("tr", {}, el("th", { scope: "row", text: rows.length ? tupleLabel(rows, rk, labels) : "全部" }));
    colKeys.forEach((_, j) => {
      const val = (cells[i] || [])[j];
      tr.append(el("td", { class: "num", text: fmtMeasure(measure, val ?? 0), "data-value": val ?? "" }));
    });
    const rt = (data.row_totals || [])[i];
    tr.append(el("td", { class: "num total", text: fmtMeasure(measure, rt ?? 0), "data-value": rt ?? "" }));
    tbody.append(tr);
  });
  const tfoot = el("tfoot", {}, el("tr", { class: "total" },
    el("th", { scope: "row", text: "合计" }),
    ...colKeys.map((_, j) => {
      const val = (data.col_totals || [])[j];
      return el("td", { class: "num", text: fmtMeasure(measure, val ?? 0), "data-value": val ?? "" });
    }),
    el("td", { class: "num grand-total", text: fmtMeasure(measure, data.total ?? 0), "data-value": data.total ?? "" }),
  ));
  table.replaceChildren(thead, tbody, tfoot);
}

/** The firms with the largest totals, largest first (the API sorts keys, not values). */
function topFirms(data) {
  const labels = data.labels;
  const totals = data.row_totals || [];
  return (data.row_keys || [])
    .map((rk, i) => ({ id: rk[0], name: keyLabel("firm_id", rk[0], labels), value: totals[i] ?? 0 }))
    .sort((a, b) => b.value - a.value || String(a.id).localeCompare(String(b.id)))
    .slice(0, TOP_FIRMS);
}

function renderTopTable(data, firms) {
  const table = document.getElementById("firms-table");
  const measure = data.measure;
  table.dataset.total = data.total === null || data.total === undefined ? "" : String(data.total);
  document.getElementById("firms-measure-head").textContent = measureName(measure);
  table.tBodies[0].replaceChildren(...firms.map((f, i) => el("tr", { "data-firm": f.id ?? "" },
    el("td", { class: "num", text: String(i + 1) }),
    el("td", { text: f.name, title: String(f.id ?? "") }),
    el("td", { class: "num", text: fmtMeasure(measure, f.value), "data-value": f.value }),
  )));
}

const charts = {};
function chartOf(v) {
  if (!charts[v.prefix]) {
    const chart = makeChart(document.getElementById(`${v.prefix}-chart`));
    // after makeChart's own resize: the last label's room depends on the width
    if (chart) window.addEventListener("resize", () => {
      if (chart.categories) chart.setOption({ grid: { right: rightRoom(chart, chart.categories, chart.rotated) } });
    });
    charts[v.prefix] = chart;
  }
  return charts[v.prefix];
}

const narrow = () => window.innerWidth < 600;
const GRID_LEFT = 10;
const GRID_RIGHT = 16;
const Y_LABELS = 120; // wider than any y-axis labels here ("150,000,000" is ~70 px)

function seriesOf(data, type) {
  const measure = data.measure;
  const scale = measure.endsWith("_fen") ? 100 : 1;
  const cols = data.cols || [];
  return (data.col_keys || []).map((ck, j) => ({
    name: cols.length ? tupleLabel(cols, ck, data.labels) : measureName(measure),
    type,
    ...(type === "bar" ? { stack: "total" } : { smooth: false, symbolSize: 5 }),
    emphasis: { focus: "series" },
    data: (data.cells || []).map((row) => (row[j] || 0) / scale),
  }));
}

// The last category's label is centred under its bar and can pass the plot's right edge,
// where the canvas cuts it: containLabel leaves no room for that half (a month × district
// pivot's "2026-12 / 宁海县" was cut). The right margin it needs, with the plot taken as
// narrow as y-axis labels of Y_LABELS px would make it, so never too little; computed
// before drawing, so the label does not jump. Rotated labels (a phone) end at their tick.
function rightRoom(chart, xs, rotated) {
  if (rotated || !xs.length) return GRID_RIGHT;
  rightRoom.ctx ||= document.createElement("canvas").getContext("2d");
  rightRoom.ctx.font = "12px sans-serif"; // ECharts' axis labels
  const half = rightRoom.ctx.measureText(xs[xs.length - 1]).width / 2;
  // the label's centre sits half a band in from the plot's right edge: right ≥ half − plot / bands
  const bands = 2 * xs.length;
  const room = (half - (chart.getWidth() - GRID_LEFT - Y_LABELS) / bands) / (1 - 1 / bands);
  return Math.max(GRID_RIGHT, Math.ceil(room) + 2);
}

function renderChart(v, data) {
  const chart = chartOf(v);
  if (!chart) return;
  const measure = data.measure;
  const rows = data.rows || [];
  const xs = (data.row_keys || []).map((rk) => (rows.length ? tupleLabel(rows, rk, data.labels) : "全部"));
  const rotated = narrow();
  Object.assign(chart, { categories: xs, rotated }); // for a resize (chartOf)
  chart.setOption({
    tooltip: { trigger: "axis", axisPointer: { type: v.kind === "trend" ? "line" : "shadow" } },
    legend: { type: "scroll", top: 0 },
    // the unit (元) sits above the axis: keep it below the legend, which wraps on a phone
    grid: { left: GRID_LEFT, right: rightRoom(chart, xs, rotated), top: rotated ? 56 : 44, bottom: 10, containLabel: true },
    xAxis: { type: "category", data: xs, axisLabel: { hideOverlap: true, rotate: rotated ? 40 : 0 } },
    yAxis: { type: "value", name: measure.endsWith("_fen") ? "元" : "" },
    series: seriesOf(data, v.kind === "trend" ? "line" : "bar"),
  }, { notMerge: true });
}

function renderTopChart(v, data, firms) {
  const chart = chartOf(v);
  if (!chart) return;
  const scale = data.measure.endsWith("_fen") ? 100 : 1;
  const shown = [...firms].reverse(); // largest on top
  chart.setOption({
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    grid: { left: 10, right: 30, top: 10, bottom: 10, containLabel: true },
    xAxis: { type: "value", axisLabel: { hideOverlap: true } },
    yAxis: { type: "category", data: shown.map((f) => f.name),
      axisLabel: { width: narrow() ? 90 : 220, overflow: "truncate" } },
    series: [{ name: measureName(data.measure), type: "bar", itemStyle: { color: "#d9480f" },
      data: shown.map((f) => f.value / scale) }],
  }, { notMerge: true });
}

/** Empty a view's table and chart: a refused query must not leave the previous answer
 * standing beside its message as if it were this one's. */
function clearView(v) {
  const table = document.getElementById(v.kind === "top" ? "firms-table" : `${v.prefix}-pivot`);
  if (table) {
    table.dataset.total = "";
    if (v.kind === "top") table.tBodies[0].replaceChildren();
    else table.replaceChildren();
  }
  if (charts[v.prefix]) charts[v.prefix].clear();
}

async function load(v) {
  if (v.kind === "pivot" && control(v, "rows") === control(v, "cols")) {
    note(v, "行和列不能选同一个维度");
    return;
  }
  try {
    const data = await api(pivotUrl(v));
    note(v, "");
    if (v.kind === "top") {
      const firms = topFirms(data);
      renderTopTable(data, firms);
      renderTopChart(v, data, firms);
    } else {
      renderPivotTable(document.getElementById(`${v.prefix}-pivot`), data);
      renderChart(v, data);
    }
    markUpdated();
  } catch (err) {
    if (err.status === 400) clearView(v); // e.g. too_large: its message says how to narrow the query
    if (err.status !== 401) note(v, describe(err));
  }
}

async function save(v, format) {
  const accept = format === "csv" ? "text/csv"
    : "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
  try {
    await download(pivotUrl(v, { format }), accept, `${v.dataset}-${control(v, "measure")}.${format}`);
  } catch (err) {
    note(v, describe(err));
  }
}

/** 导入入驻企业: the chosen file to POST /v1/onboarding/import; accepted, duplicate and
 * rejected rows (row, column, why) shown, and the onboarding views reloaded. */
function wireImport() {
  const form = document.getElementById("import-form");
  const result = document.getElementById("import-result");
  const wrap = document.getElementById("import-rejected-wrap");
  const body = document.getElementById("import-rejected").tBodies[0];
  const input = document.getElementById("import-file");
  input.addEventListener("change", () => {
    const file = input.files[0];
    document.getElementById("import-file-name").textContent = file ? file.name : "未选择文件（.xlsx 或 CSV）";
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = document.getElementById("import-file").files[0];
    wrap.hidden = true;
    body.replaceChildren();
    if (!file) {
      result.textContent = "请先选择 .xlsx 或 CSV 文件";
      result.hidden = false;
      return;
    }
    result.textContent = "导入中…";
    result.hidden = false;
    try {
      const answer = await api("/v1/onboarding/import?tz=%2B08:00", { method: "POST", body: file });
      const rejected = answer.rejected || [];
      result.textContent = `导入 ${fmtInt(answer.accepted)} 行 · 重复 ${fmtInt(answer.duplicates)} 行 · 有误 ${fmtInt(rejected.length)} 行`;
      result.dataset.accepted = String(answer.accepted);
      result.dataset.duplicates = String(answer.duplicates);
      result.dataset.rejected = String(rejected.length);
      body.replaceChildren(...rejected.map((r) => el("tr", {},
        el("td", { class: "num", text: String(r.row) }),
        el("td", { text: r.column || "—" }),
        el("td", { text: r.message }),
      )));
      wrap.hidden = rejected.length === 0;
      for (const v of VIEWS) if (v.dataset === "onboarding") load(v);
    } catch (err) {
      if (err.status !== 401) result.textContent = err.status === 403 ? "此账号不能导入（需要可写入的账号）" : describe(err);
    }
  });
}

async function main() {
  await loadLabels();
  wireImport();
  for (const v of VIEWS) {
    const form = document.getElementById(`${v.prefix}-controls`);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      load(v);
    });
    for (const ctl of form.querySelectorAll("select, input")) ctl.addEventListener("change", () => load(v));
    document.getElementById(`${v.prefix}-csv`).addEventListener("click", () => save(v, "csv"));
    document.getElementById(`${v.prefix}-xlsx`).addEventListener("click", () => save(v, "xlsx"));
    load(v);
  }
}

main();
