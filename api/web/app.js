// Shared helpers for the livesales dashboard: token storage, the API fetch helper,
// number formatting and the error banner. Plain ES module, no build step.

const TOKEN_KEY = "livesales.token";

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch (e) {
    return "";
  }
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch (e) {
    /* storage unavailable: nothing to clear */
  }
}

/** Go to the sign-in page: with no stored token, or (reason "unauthorized") after a 401. */
export function toSignIn(reason = "unauthorized") {
  clearToken();
  window.location.replace(reason ? `index.html?reason=${encodeURIComponent(reason)}` : "index.html");
}

/** For pages other than index.html: redirect unless a token is stored. */
export function requireToken() {
  const token = getToken();
  if (!token) {
    toSignIn("");
    throw new ApiError(401, "unauthorized", "未登录");
  }
  return token;
}

export class ApiError extends Error {
  // messageZh: the server's message for people, when it sends one (a pivot over a limit);
  // limit: {name, max, estimate} of that limit.
  constructor(status, code, message, messageZh = "", limit = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.messageZh = messageZh;
    this.limit = limit;
  }
}

export function authHeaders(token = getToken(), extra = {}) {
  const headers = { ...extra };
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

/** Read the `{"error": {"code", "message"}}` body of a failed response. */
export async function errorOf(resp) {
  let code = `http_${resp.status}`;
  let message = `HTTP ${resp.status} ${resp.statusText || ""}`.trim();
  let messageZh = "";
  let limit = null;
  try {
    const text = await resp.text();
    try {
      const body = JSON.parse(text);
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || message;
        messageZh = body.error.message_zh || "";
        limit = body.error.limit || null;
      }
    } catch (e) {
      if (text) message = `${message}: ${text.slice(0, 200)}`;
    }
  } catch (e) {
    /* body unreadable: keep the status line */
  }
  return new ApiError(resp.status, code, message, messageZh, limit);
}

/**
 * fetch() an API path with the stored token.
 * opts: fetch options plus `token` (override), `raw` (return the Response, not JSON),
 * `redirectOn401` (default true).
 * Throws ApiError on non-2xx with the JSON error's message; on 401 goes to index.html.
 */
export async function api(path, opts = {}) {
  const { token, raw, redirectOn401 = true, headers, ...rest } = opts;
  const useToken = token !== undefined ? token : getToken();
  let resp;
  try {
    resp = await fetch(path, {
      ...rest,
      headers: authHeaders(useToken, { Accept: "application/json", ...(headers || {}) }),
    });
  } catch (e) {
    throw new ApiError(0, "network", `无法连接服务器：${e.message || e}`);
  }
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (resp.status === 401 && redirectOn401) toSignIn();
    throw err;
  }
  if (raw) return resp;
  return resp.json();
}

// ---- formatting -------------------------------------------------------------

const yuanFmt = new Intl.NumberFormat("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const intFmt = new Intl.NumberFormat("zh-CN", { maximumFractionDigits: 0 });
const oneFmt = new Intl.NumberFormat("zh-CN", { minimumFractionDigits: 1, maximumFractionDigits: 1 });

const isNum = (v) => typeof v === "number" && Number.isFinite(v);

/** fen (integer cents) → "1,234.56" (元); "—" for null. */
export function fenToYuan(fen) {
  return isNum(fen) ? yuanFmt.format(fen / 100) : "—";
}

/** grams → "12.3" (kg, 1 decimal); "—" for null. */
export function gramsToKg(g) {
  return isNum(g) ? oneFmt.format(g / 1000) : "—";
}

/** integer with thousands separators; "—" for null. */
export function fmtInt(n) {
  return isNum(n) ? intFmt.format(n) : "—";
}

/** one decimal, thousands separators; "—" for null. */
export function fmtOne(n) {
  return isNum(n) ? oneFmt.format(n) : "—";
}

/** a ratio with 4 decimals (0.0325) → "3.25%"; "—" for null. */
export function fmtRate(r) {
  return isNum(r) ? `${(r * 100).toFixed(2)}%` : "—";
}

/** "HH:MM" taken from the RFC 3339 string itself (no browser-timezone conversion). */
export function hhmm(rfc3339) {
  const m = /T(\d{2}):(\d{2})/.exec(String(rfc3339 || ""));
  return m ? `${m[1]}:${m[2]}` : String(rfc3339 || "");
}

const OFFSET_MS = 8 * 3600 * 1000; // the dashboard shows China time (+08:00)
const pad2 = (n) => String(n).padStart(2, "0");

/** "HH:MM" in +08:00 whatever offset the RFC 3339 string carries; "—" for null. */
export function clock(rfc3339) {
  if (!rfc3339) return "—";
  const s = String(rfc3339);
  if (s.endsWith("+08:00")) return hhmm(s);
  const t = Date.parse(s);
  if (Number.isNaN(t)) return hhmm(s);
  const d = new Date(t + OFFSET_MS);
  return `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
}

/** Today's date in +08:00 as "YYYY-MM-DD" (the value of an <input type=date>). */
export function today8() {
  return new Date(Date.now() + OFFSET_MS).toISOString().slice(0, 10);
}

/** "YYYY-MM-DD" plus n days. */
export function addDays(day, n) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

/** Start of a +08:00 day as RFC 3339, for `from`/`to` parameters. */
export function dayStart(day) {
  return `${day}T00:00:00+08:00`;
}

// ---- DOM helpers ------------------------------------------------------------

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Show a message in the #error banner (visible); empty message hides it. */
export function showError(message) {
  const box = document.getElementById("error");
  if (!box) {
    if (message) console.error(message);
    return;
  }
  box.textContent = message || "";
  box.hidden = !message;
}

export function clearError() {
  showError("");
}

/** Message for an error thrown by api(): the server's Chinese one as it stands, when sent. */
export function describe(err) {
  if (err instanceof ApiError && err.messageZh) return err.messageZh;
  if (err instanceof ApiError) {
    return err.status ? `接口错误 ${err.status}（${err.code}）：${err.message}` : err.message;
  }
  return `出错：${(err && err.message) || err}`;
}

/** Wire a #sign-out button (if present) to clear the token and go to index.html. */
export function wireSignOut() {
  const btn = document.getElementById("sign-out");
  if (btn) {
    btn.addEventListener("click", () => {
      clearToken();
      window.location.href = "index.html";
    });
  }
}

export function markUpdated() {
  document.body.dataset.updatedAt = String(Date.now());
}

/** Attach an ECharts instance to a div if the vendored library loaded; else null. */
export function makeChart(div) {
  const lib = window.echarts;
  if (!lib || !div) return null;
  const chart = lib.init(div, null, { renderer: "canvas" });
  window.addEventListener("resize", () => chart.resize());
  return chart;
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") u.set(k, v);
  }
  return u.toString();
}

function filenameOf(resp, fallback) {
  const cd = resp.headers.get("Content-Disposition") || "";
  const star = /filename\*=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
  const plain = /filename="?([^";]+)"?/i.exec(cd);
  const m = star || plain;
  if (!m) return fallback;
  try {
    return decodeURIComponent(m[1]);
  } catch (e) {
    return m[1];
  }
}

/** GET an export with the token (a plain link cannot carry it) and save it under the server's name. */
export async function download(url, accept, fallbackName) {
  const resp = await fetch(url, { headers: authHeaders(undefined, { Accept: accept }) });
  if (resp.status === 401) {
    toSignIn();
    return;
  }
  if (!resp.ok) throw await errorOf(resp);
  const blob = await resp.blob();
  const href = URL.createObjectURL(blob);
  const a = el("a", { href, download: filenameOf(resp, fallbackName), hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
}
