import {
  api, requireToken, authHeaders, errorOf, toSignIn, fenToYuan, fmtInt, el, showError, clearError,
  describe, wireSignOut, markUpdated, makeChart,
} from "./app.js";

requireToken();
wireSignOut();

const DIM_LABELS = {
  platform: "平台", district: "区县", export_oriented: "外贸属性", week: "周", month: "月", day: "日",
};
const MEASURE_LABELS = {
  firms_onboarded: "入驻企业数", firms_withdrawn: "退出企业数", firms_net: "净入驻企业数",
  gmv_fen: "销售额（元）", paid_orders: "支付订单", firms_with_sales: "有销售企业数",
};

const PIVOTS = [
  { prefix: "onboarding", dataset: "onboarding" },
  { prefix: "domestic", dataset: "domestic_sales" },
];

function keyLabel(dim, value) {
  if (dim === "export_oriented" || typeof value === "boolean") {
    if (value === true || value === 1 || value === "true") return "外贸";
    if (value === false || value === 0 || value === "false") return "非外贸";
  }
  if (value === null || value === undefined || value === "") return "（空）";
  return String(value);
}

function tupleLabel(dims, key) {
  return dims.map((d, i) => keyLabel(d, key[i])).join(" / ");
}

function fmtMeasure(measure, v) {
  return measure.endsWith("_fen") ? fenToYuan(v) : fmtInt(v);
}

function pivotUrl(p, extra = {}) {
  const get = (n) => document.getElementById(`${p.prefix}-${n}`).value;
  const params = new URLSearchParams();
  params.set("dataset", p.dataset);
  const rows = get("rows");
  const cols = get("cols");
  params.set("rows", rows);
  if (cols && cols !== "none") params.set("cols", cols);
  params.set("measure", get("measure"));
  const from = get("from");
  const to = get("to");
  if (from) params.set("from", `${from}T00:00:00+08:00`);
  if (to) params.set("to", `${to}T00:00:00+08:00`);
  params.set("tz", "+08:00");
  for (const [k, v] of Object.entries(extra)) params.set(k, v);
  return `/v1/pivot?${params.toString()}`;
}

function renderTable(table, data) {
  const measure = data.measure;
  const rows = data.rows || [];
  const cols = data.cols || [];
  const rowKeys = data.row_keys || [];
  const colKeys = data.col_keys || [];
  const cells = data.cells || [];
  table.dataset.total = data.total === null || data.total === undefined ? "" : String(data.total);
  table.dataset.measure = measure || "";

  const rowHead = rows.map((d) => DIM_LABELS[d] || d).join(" / ") || "合计";
  const colHeads = colKeys.map((ck) => (cols.length ? tupleLabel(cols, ck) : (MEASURE_LABELS[measure] || measure)));
  const thead = el("thead", {}, el("tr", {},
    el("th", { text: rowHead, scope: "col" }),
    ...colHeads.map((h) => el("th", { class: "num", text: h, scope: "col" })),
    el("th", { class: "num total", text: "合计", scope: "col" }),
  ));
  const tbody = el("tbody");
  rowKeys.forEach((rk, i) => {
    const tr = el("tr", {}, el("th", { scope: "row", text: rows.length ? tupleLabel(rows, rk) : "全部" }));
    colKeys.forEach((_, j) => {
      const v = (cells[i] || [])[j];
      tr.append(el("td", { class: "num", text: fmtMeasure(measure, v ?? 0), "data-value": v ?? "" }));
    });
    const rt = (data.row_totals || [])[i];
    tr.append(el("td", { class: "num total", text: fmtMeasure(measure, rt ?? 0), "data-value": rt ?? "" }));
    tbody.append(tr);
  });
  const tfoot = el("tfoot", {}, el("tr", { class: "total" },
    el("th", { scope: "row", text: "合计" }),
    ...colKeys.map((_, j) => {
      const v = (data.col_totals || [])[j];
      return el("td", { class: "num", text: fmtMeasure(measure, v ?? 0), "data-value": v ?? "" });
    }),
    el("td", { class: "num grand-total", text: fmtMeasure(measure, data.total ?? 0), "data-value": data.total ?? "" }),
  ));
  table.replaceChildren(thead, tbody, tfoot);
}

const charts = {};
function renderChart(p, data) {
  const div = document.getElementById(`${p.prefix}-chart`);
  if (!charts[p.prefix]) charts[p.prefix] = makeChart(div);
  const chart = charts[p.prefix];
  if (!chart) return;
  const measure = data.measure;
  const scale = measure.endsWith("_fen") ? 100 : 1;
  const rows = data.rows || [];
  const cols = data.cols || [];
  const xs = (data.row_keys || []).map((rk) => (rows.length ? tupleLabel(rows, rk) : "全部"));
  const series = (data.col_keys || []).map((ck, j) => ({
    name: cols.length ? tupleLabel(cols, ck) : (MEASURE_LABELS[measure] || measure),
    type: "bar",
    stack: "total",
    emphasis: { focus: "series" },
    data: (data.cells || []).map((row) => (row[j] || 0) / scale),
  }));
  chart.setOption({
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    legend: { type: "scroll", top: 0 },
    grid: { left: 60, right: 20, top: 36, bottom: 30, containLabel: true },
    xAxis: { type: "category", data: xs },
    yAxis: { type: "value", name: measure.endsWith("_fen") ? "元" : "" },
    series,
  }, { notMerge: true });
}

async function load(p) {
  const rows = document.getElementById(`${p.prefix}-rows`).value;
  const cols = document.getElementById(`${p.prefix}-cols`).value;
  if (rows === cols) {
    showError("行和列不能选同一个维度");
    return;
  }
  try {
    const data = await api(pivotUrl(p));
    clearError();
    renderTable(document.getElementById(`${p.prefix}-pivot`), data);
    renderChart(p, data);
    markUpdated();
  } catch (err) {
    if (err.status !== 401) showError(describe(err));
  }
}

function filenameOf(resp, fallback) {
  const cd = resp.headers.get("Content-Disposition") || "";
  const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
  return m ? decodeURIComponent(m[1]) : fallback;
}

async function downloadCsv(p) {
  const url = pivotUrl(p, { format: "csv" });
  try {
    const resp = await fetch(url, { headers: authHeaders(undefined, { Accept: "text/csv" }) });
    if (resp.status === 401) {
      toSignIn();
      return;
    }
    if (!resp.ok) throw await errorOf(resp);
    const blob = await resp.blob();
    const measure = document.getElementById(`${p.prefix}-measure`).value;
    const name = filenameOf(resp, `${p.dataset}-${measure}.csv`);
    const href = URL.createObjectURL(blob);
    const a = el("a", { href, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 10000);
  } catch (err) {
    showError(describe(err));
  }
}

for (const p of PIVOTS) {
  const form = document.getElementById(`${p.prefix}-controls`);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load(p);
  });
  for (const ctl of form.querySelectorAll("select, input")) {
    ctl.addEventListener("change", () => load(p));
  }
  document.getElementById(`${p.prefix}-csv`).addEventListener("click", () => downloadCsv(p));
  load(p);
}
