// Draws a 战报 (sales poster) on a canvas: a picture a cadre saves on the phone and posts to
// the township's WeChat group after the sale. The canvas is always POSTER_WIDTH pixels wide,
// whatever the screen's devicePixelRatio, so the same sale gives the same picture on every
// phone (WeChat shows a 1080 px wide image sharply; a screenshot of the page would not be).
// Every figure goes through `put`, which records what was drawn, so a test can compare the
// picture's figures with /summary's without reading pixels.

export const POSTER_WIDTH = 1080;

const FONT = '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", '
  + '"WenQuanYi Micro Hei", sans-serif';
const PAD = 64;
const INNER = POSTER_WIDTH - 2 * PAD;
const GOLD = "#ffd43b";
const CREAM = "#fff4e6";
const PALE = "rgba(255, 244, 230, 0.72)";
const CARD = "rgba(0, 0, 0, 0.22)";
const TOP_SKUS = 5;
const CURVE_H = 300;
const SKU_ROW = 76;

function font(size, weight = "normal") {
  return `${weight} ${size}px ${FONT}`;
}

/** Set the largest font ≤ size (≥ min) at which text fits width; returns the size used. */
function fitFont(ctx, text, size, width, weight = "normal", min = 20) {
  let s = size;
  ctx.font = font(s, weight);
  while (s > min && ctx.measureText(text).width > width) {
    s -= 2;
    ctx.font = font(s, weight);
  }
  return s;
}

/** Cut text with "…" to fit width at the current font. */
function ellipsize(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let t = text;
  while (t.length > 1 && ctx.measureText(`${t}…`).width > width) t = t.slice(0, -1);
  return `${t}…`;
}

/** Split text into at most `lines` lines that fit width (CJK text breaks anywhere). */
function wrap(ctx, text, width, lines) {
  const out = [];
  let rest = text;
  while (rest && out.length < lines) {
    let n = rest.length;
    while (n > 1 && ctx.measureText(rest.slice(0, n)).width > width) n -= 1;
    if (out.length === lines - 1 && n < rest.length) {
      out.push(ellipsize(ctx, rest, width));
      return out;
    }
    out.push(rest.slice(0, n));
    rest = rest.slice(n);
  }
  return out;
}

/** A filled rounded rectangle, by arcs: ctx.roundRect is missing from older in-app browsers. */
function roundRect(ctx, x, y, w, h, r, fill) {
  ctx.beginPath();
  ctx.moveTo(x + r, y);
  ctx.arcTo(x + w, y, x + w, y + h, r);
  ctx.arcTo(x + w, y + h, x, y + h, r);
  ctx.arcTo(x, y + h, x, y, r);
  ctx.arcTo(x, y, x + w, y, r);
  ctx.closePath();
  ctx.fillStyle = fill;
  ctx.fill();
}

/** Where the GMV card starts (below the title's one or two lines) and the poster's height. */
function layout(titleLines, titleSize, skus) {
  const heroY = PAD + 64 + 40 + titleLines * titleSize * 1.2 + 56 + 44;
  const skuBlock = skus ? 90 + skus * SKU_ROW + 40 : 0;
  return { heroY, height: heroY + 260 + 40 + 2 * 170 + 20 + CURVE_H + 110 + 40 + skuBlock + 100 };
}

/**
 * Draw the poster. `p` is what the poster says, already formatted for people:
 * {title, subtitle, date, hero: {label, text}, figures: [{key, label, text}], skus: [{name, units, gmv}],
 *  curve: {points: [[t, cumulativeYuan]], from, to, total}, footer}.
 * Returns the canvas and `drawn`: every figure's key → the text drawn.
 */
export function drawPoster(p) {
  const skus = p.skus.slice(0, TOP_SKUS);
  const canvas = document.createElement("canvas");
  canvas.width = POSTER_WIDTH;
  const ctx = canvas.getContext("2d");
  const size = fitFont(ctx, p.title, 68, INNER, "bold", 52);
  const titleLines = wrap(ctx, p.title, INNER, 2);
  const { heroY, height } = layout(titleLines.length, size, skus.length);
  canvas.height = height; // resets the context's state: every font below is set again
  const drawn = {};
  const put = (key, text, x, y) => {
    ctx.fillText(text, x, y);
    drawn[key] = text;
  };

  const bg = ctx.createLinearGradient(0, 0, 0, canvas.height);
  bg.addColorStop(0, "#7a0b0b");
  bg.addColorStop(0.45, "#a61e1e");
  bg.addColorStop(1, "#5c0a0a");
  ctx.fillStyle = bg;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.textBaseline = "alphabetic";

  // the tag and the date
  let y = PAD;
  roundRect(ctx, PAD, y, 220, 64, 32, GOLD);
  ctx.fillStyle = "#7a0b0b";
  ctx.font = font(38, "bold");
  ctx.textAlign = "center";
  ctx.fillText("直播战报", PAD + 110, y + 46);
  ctx.textAlign = "right";
  ctx.fillStyle = CREAM;
  ctx.font = font(34);
  put("date", p.date, POSTER_WIDTH - PAD, y + 46);
  ctx.textAlign = "left";

  // title (two lines at most) and host · platform · region
  y += 64 + 40;
  ctx.fillStyle = "#ffffff";
  ctx.font = font(size, "bold");
  for (const line of titleLines) {
    y += size * 1.2;
    ctx.fillText(line, PAD, y);
  }
  drawn.title = titleLines.join("");
  y += 56;
  ctx.fillStyle = PALE;
  ctx.font = font(34);
  put("subtitle", ellipsize(ctx, p.subtitle, INNER), PAD, y);

  // the hero figure: GMV
  y = heroY;
  roundRect(ctx, PAD, y, INNER, 260, 28, CARD);
  ctx.fillStyle = PALE;
  ctx.font = font(36);
  ctx.fillText(p.hero.label, PAD + 48, y + 70);
  ctx.fillStyle = GOLD;
  fitFont(ctx, p.hero.text, 128, INNER - 96, "bold", 60);
  put(p.hero.key, p.hero.text, PAD + 48, y + 210);

  // six figures, three a row
  y += 260 + 40;
  const colW = (INNER - 2 * 24) / 3;
  p.figures.forEach((f, i) => {
    const x = PAD + (i % 3) * (colW + 24);
    const top = y + Math.floor(i / 3) * 170;
    roundRect(ctx, x, top, colW, 146, 22, CARD);
    ctx.fillStyle = PALE;
    fitFont(ctx, f.label, 30, colW - 48);
    ctx.fillText(f.label, x + 24, top + 50);
    ctx.fillStyle = "#ffffff";
    fitFont(ctx, f.text, 56, colW - 48, "bold", 28);
    put(f.key, f.text, x + 24, top + 118);
  });
  y += 2 * 170 + 20;

  drawCurve(ctx, p.curve, y);
  y += CURVE_H + 110 + 40;

  if (skus.length) {
    roundRect(ctx, PAD, y, INNER, 90 + skus.length * SKU_ROW, 28, CARD);
    ctx.fillStyle = CREAM;
    ctx.font = font(36, "bold");
    ctx.fillText(`热销商品 TOP ${skus.length}`, PAD + 40, y + 62);
    drawn.skus = [];
    skus.forEach((s, i) => {
      const row = y + 90 + i * SKU_ROW;
      roundRect(ctx, PAD + 40, row + 12, 48, 48, 12, i < 3 ? GOLD : "rgba(255,255,255,0.25)");
      ctx.fillStyle = i < 3 ? "#7a0b0b" : CREAM;
      ctx.font = font(30, "bold");
      ctx.textAlign = "center";
      ctx.fillText(String(i + 1), PAD + 64, row + 47);
      ctx.textAlign = "right";
      ctx.fillStyle = GOLD;
      ctx.font = font(34, "bold");
      ctx.fillText(s.gmv, POSTER_WIDTH - PAD - 40, row + 48);
      const gmvW = ctx.measureText(s.gmv).width;
      ctx.fillStyle = PALE;
      ctx.font = font(28);
      ctx.fillText(s.units, POSTER_WIDTH - PAD - 40 - gmvW - 28, row + 48);
      const unitsW = ctx.measureText(s.units).width;
      ctx.textAlign = "left";
      ctx.fillStyle = "#ffffff";
      ctx.font = font(32);
      const nameW = INNER - 80 - 60 - gmvW - 28 - unitsW - 28;
      const name = ellipsize(ctx, s.name, nameW);
      ctx.fillText(name, PAD + 108, row + 48);
      drawn.skus.push({ name, units: s.units, gmv: s.gmv });
    });
  }

  ctx.fillStyle = "rgba(255, 244, 230, 0.55)";
  ctx.font = font(26);
  ctx.textAlign = "center";
  put("footer", p.footer, POSTER_WIDTH / 2, canvas.height - 48);
  ctx.textAlign = "left";
  return { canvas, drawn };
}

/** The sales curve: cumulative GMV over the sale's minutes, time to scale. */
function drawCurve(ctx, curve, y) {
  roundRect(ctx, PAD, y, INNER, CURVE_H + 110, 28, CARD);
  ctx.fillStyle = CREAM;
  ctx.font = font(36, "bold");
  ctx.fillText("销售曲线", PAD + 40, y + 62);
  ctx.fillStyle = PALE;
  ctx.font = font(28);
  ctx.textAlign = "right";
  ctx.fillText("累计成交额（元）", POSTER_WIDTH - PAD - 40, y + 62);
  ctx.textAlign = "left";
  const pts = curve.points;
  const x0 = PAD + 40;
  const x1 = POSTER_WIDTH - PAD - 40;
  const top = y + 96;
  const bottom = y + CURVE_H + 40;
  ctx.strokeStyle = "rgba(255,255,255,0.25)";
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(x0, bottom);
  ctx.lineTo(x1, bottom);
  ctx.stroke();
  if (!pts.length || pts[pts.length - 1][1] <= 0) {
    ctx.fillStyle = PALE;
    ctx.font = font(32);
    ctx.textAlign = "center";
    ctx.fillText("暂无成交", POSTER_WIDTH / 2, (top + bottom) / 2);
    ctx.textAlign = "left";
  } else {
    const t0 = pts[0][0];
    const span = Math.max(pts[pts.length - 1][0] - t0, 1);
    const max = Math.max(...pts.map((p) => p[1]), 1);
    const at = ([t, v]) => [x0 + ((t - t0) / span) * (x1 - x0), bottom - (v / max) * (bottom - top)];
    const fill = ctx.createLinearGradient(0, top, 0, bottom);
    fill.addColorStop(0, "rgba(255, 212, 59, 0.55)");
    fill.addColorStop(1, "rgba(255, 212, 59, 0.04)");
    ctx.beginPath();
    ctx.moveTo(x0, bottom);
    for (const p of pts) ctx.lineTo(...at(p));
    ctx.lineTo(at(pts[pts.length - 1])[0], bottom);
    ctx.closePath();
    ctx.fillStyle = fill;
    ctx.fill();
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(...at(p)) : ctx.moveTo(...at(p))));
    ctx.strokeStyle = GOLD;
    ctx.lineWidth = 5;
    ctx.lineJoin = "round";
    ctx.stroke();
  }
  ctx.fillStyle = PALE;
  ctx.font = font(26);
  ctx.fillText(curve.from, x0, bottom + 40);
  ctx.textAlign = "center";
  if (curve.mid) ctx.fillText(curve.mid, (x0 + x1) / 2, bottom + 40);
  ctx.textAlign = "right";
  ctx.fillText(curve.to, x1, bottom + 40);
  ctx.textAlign = "left";
}
