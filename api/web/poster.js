// 生成战报: one tap on the live screen makes the sale's poster (poster-draw.js) from fresh
// /summary and /minutes answers, shows it in an overlay (long-press the picture to save it:
// WeChat's browser offers 保存图片 on an <img>) and offers it as a PNG download.
// The overlay's data-figures holds the raw figures the poster was drawn from and the texts
// drawn, so a test (tests/demo/test_live_poster.py) can hold them equal to /summary's.

import { api, fenToYuan, gramsToKg, fmtInt, hhmm, clock, today8, showError, describe } from "./app.js";
import { platformName } from "./labels.js";
import { drawPoster } from "./poster-draw.js";

const TZ = "tz=%2B08:00";
// the summary's fields the poster shows; compared with /summary by the browser test
const FIGURES = ["gmv_fen", "paid_orders", "units", "weight_g", "viewers_peak", "viewers_avg", "gpm_fen"];

const yuan = (fen) => (typeof fen === "number" ? `¥${fenToYuan(fen)}` : "—");

/** "2020年2月29日" from an RFC 3339 time (its own date, the +08:00 the page asks for). */
function chineseDate(rfc3339) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(rfc3339 || "")) || /^(\d{4})-(\d{2})-(\d{2})/.exec(today8());
  return `${m[1]}年${Number(m[2])}月${Number(m[3])}日`;
}

/** Cumulative GMV (yuan) per minute, on a time scale in ms. */
function curveOf(minutes) {
  let sum = 0;
  const points = minutes.map((r) => {
    sum += r.gmv_fen || 0;
    return [Date.parse(r.minute), sum / 100];
  });
  const first = minutes[0];
  const last = minutes[minutes.length - 1];
  if (!first) return { points, from: "", mid: "", to: "" };
  // the time halfway, as HH:MM in +08:00 (the minutes' own offset)
  const mid = clock(new Date((points[0][0] + points[points.length - 1][0]) / 2).toISOString());
  return { points, from: hhmm(first.minute), mid: minutes.length > 2 ? mid : "", to: hhmm(last.minute) };
}

/** What the poster says, formatted for people, from a summary and its minutes. */
export function posterContent(s, minutes, channelId) {
  const place = [platformName(s.platform), [s.district, s.township].filter(Boolean).join("")].filter(Boolean);
  return {
    title: s.title || channelId,
    subtitle: [s.host ? `主播：${s.host}` : null, ...place].filter(Boolean).join(" · "),
    date: chineseDate(s.first_paid_at),
    hero: { key: "gmv_fen", label: "成交额（元）", text: yuan(s.gmv_fen) },
    figures: [
      { key: "paid_orders", label: "支付订单（单）", text: fmtInt(s.paid_orders) },
      { key: "units", label: "成交件数（件）", text: fmtInt(s.units) },
      { key: "weight_g", label: "重量（kg）", text: gramsToKg(s.weight_g) },
      { key: "viewers_peak", label: "在线峰值（人）", text: fmtInt(s.viewers_peak) },
      { key: "viewers_avg", label: "平均在线（人）", text: fmtInt(s.viewers_avg) },
      { key: "gpm_fen", label: "千次观看成交 GPM", text: yuan(s.gpm_fen) },
    ],
    skus: (s.top_skus || []).map((k) => ({
      sku: k.sku, name: k.name || k.sku, units: `${fmtInt(k.units)} 件`, gmv: yuan(k.gmv_fen),
    })),
    curve: curveOf(minutes),
    footer: s.last_paid_at ? `统计至最后一单 ${clock(s.last_paid_at)}（北京时间）· 直播销售实时统计` : "直播销售实时统计",
  };
}

function fileName(title, date) {
  const safe = String(title).replace(/[\\/:*?"<>|\s]+/g, "_").slice(0, 40);
  return `战报_${safe}_${date.replace(/[年月]/g, "-").replace("日", "")}.png`;
}

let lastUrl = null;
let lastFile = null;

/** The phone's share sheet (Web Share with files) where the browser offers it. */
function canShare(file) {
  try {
    return Boolean(navigator.canShare && navigator.canShare({ files: [file] }));
  } catch (e) {
    return false;
  }
}

async function makePoster(base, channelId) {
  const [s, m] = await Promise.all([api(`${base}/summary?${TZ}`), api(`${base}/minutes?${TZ}`)]);
  const content = posterContent(s, (m && m.minutes) || [], channelId);
  const { canvas, drawn } = drawPoster(content);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  if (lastUrl) URL.revokeObjectURL(lastUrl);
  lastUrl = URL.createObjectURL(blob);
  const overlay = document.getElementById("poster");
  const link = document.getElementById("poster-download");
  link.href = lastUrl;
  link.download = fileName(content.title, content.date);
  lastFile = new File([blob], link.download, { type: "image/png" });
  document.getElementById("poster-share").hidden = !canShare(lastFile);
  const img = document.getElementById("poster-image");
  // a data: URL, not the blob's: in-app browsers save a long-pressed data/http image, not always a blob
  img.src = canvas.toDataURL("image/png");
  overlay.dataset.figures = JSON.stringify({
    channel_id: s.channel_id,
    values: Object.fromEntries(FIGURES.map((k) => [k, s[k] ?? null])),
    top_skus: (s.top_skus || []).slice(0, 5).map((k) => ({ sku: k.sku, units: k.units, gmv_fen: k.gmv_fen })),
    drawn,
    width: canvas.width,
    height: canvas.height,
  });
  overlay.hidden = false;
  document.body.classList.add("no-scroll");
}

/** Wire 生成战报 and the overlay's 关闭 (also Escape, and a tap beside the picture). */
export function wirePoster(base, channelId) {
  const btn = document.getElementById("poster-make");
  const overlay = document.getElementById("poster");
  if (!btn || !overlay) return;
  const close = () => {
    overlay.hidden = true;
    document.body.classList.remove("no-scroll");
  };
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    btn.textContent = "生成中…";
    try {
      await makePoster(base, channelId);
    } catch (err) {
      showError(`战报生成失败：${describe(err)}`);
    } finally {
      btn.disabled = false;
      btn.textContent = "生成战报";
    }
  });
  document.getElementById("poster-close").addEventListener("click", close);
  document.getElementById("poster-share").addEventListener("click", () => {
    if (lastFile) navigator.share({ files: [lastFile], title: "直播战报" }).catch(() => undefined);
  });
  overlay.addEventListener("click", (e) => {
    if (e.target === overlay) close();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !overlay.hidden) close();
  });
}
