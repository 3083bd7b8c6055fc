// Display names for the slugs the API speaks (platforms, channel status, alert rules,
// pivot dimensions and measures). JSON keys stay slugs; people read 抖音, not douyin.
// The server's table (GET /v1/labels, api/labels.py, the one the exports use) is merged
// over the built-in copy below, which only covers an older server or a failed request.

import { api } from "./app.js";

const PLATFORMS = {
  douyin: "抖音",
  kuaishou: "快手",
  taobao: "淘宝",
  pinduoduo: "拼多多",
  jd: "京东",
  netease: "网易",
  vipshop: "唯品会",
  wechat: "微信视频号",
};

export const STATUS_NAMES = { live: "直播中", scheduled: "未开始", ended: "已结束" };

const RULES = { silence: "无成交", refund_spike: "退款激增", pace_drop: "成交放缓" };

const DIMENSIONS = {
  platform: "平台", channel_id: "直播间", district: "区县", township: "乡镇", merchant_id: "商家",
  firm_id: "企业", export_oriented: "是否外贸", day: "日", week: "周", month: "月",
};

const MEASURES = {
  paid_orders: "支付订单数", gmv_fen: "成交额（元）", units: "件数", weight_g: "重量（千克）",
  created_orders: "下单数", refunded_orders: "退款订单数", refund_fen: "退款额（元）", net_gmv_fen: "净成交额（元）",
  firms_onboarded: "入驻企业数", firms_withdrawn: "退出企业数", firms_net: "净入驻企业数",
  firms_with_sales: "有销售的企业数",
  live_sessions: "直播场次", live_gmv_fen: "直播销售额（元）", live_products: "直播商品数", active_hosts: "活跃主播数",
};

// the summary's figures (live screen, 战报); avg_order_fen is 笔单价, never 客单价
const FIGURES = {
  gmv_fen: "成交额（元）", paid_orders: "支付订单", units: "件数", weight_g: "重量（kg）", views_total: "点击量",
  viewers_peak: "在线峰值", viewers_avg: "平均在线", gpm_fen: "千次观看成交 GPM（元）", avg_order_fen: "笔单价（元）",
  seconds_per_order: "成交节奏", refunded_orders: "退款订单", refund_rate: "退款率", refund_fen: "退款（元）",
  net_gmv_fen: "净成交额（元）",
};

const BOOLEANS = { true: "是", false: "否" };

const table = {
  platforms: { ...PLATFORMS }, rules: { ...RULES }, dimensions: { ...DIMENSIONS }, measures: { ...MEASURES },
  booleans: { ...BOOLEANS }, figures: { ...FIGURES },
};

/** 抖音 for douyin; an unknown slug shows as itself; "—" for null. */
export function platformName(slug) {
  if (slug === null || slug === undefined || slug === "") return "—";
  return table.platforms[slug] || String(slug);
}

/** The platform slugs known to the dashboard, in table order (for filter menus). */
export function platformSlugs() {
  return Object.keys(table.platforms);
}

export function dimensionName(dim) {
  return table.dimensions[dim] || String(dim);
}

/** The name of a summary figure (gpm_fen → 千次观看成交 GPM（元）). */
export function figureName(field) {
  return table.figures[field] || String(field);
}

export function measureName(measure) {
  return table.measures[measure] || String(measure);
}

/** 是 / 否 for a boolean key (export_oriented); null when the value is not a boolean. */
export function booleanName(value) {
  if (value === true || value === 1 || value === "true") return table.booleans.true;
  if (value === false || value === 0 || value === "false") return table.booleans.false;
  return null;
}

export function statusName(status) {
  if (!status) return "—";
  return STATUS_NAMES[status] || String(status);
}

export function alertName(rule) {
  return table.rules[rule] || String(rule || "提醒");
}

/** Take the served {"platforms": {...}, "rules": {...}, ...}; ignore what is not a name table. */
function merge(body) {
  if (!body || typeof body !== "object") return;
  for (const [key, names] of Object.entries(table)) {
    const served = body[key];
    if (!served || typeof served !== "object") continue;
    for (const [slug, name] of Object.entries(served)) {
      if (typeof name === "string" && name) names[slug] = name;
    }
  }
}

let loading = null;

/** Fetch the served label table once; without one (older server) the built-in table stays. */
export function loadLabels() {
  if (!loading) {
    loading = api("/v1/labels", { redirectOn401: false })
      .then(merge)
      .catch(() => undefined);
  }
  return loading;
}
