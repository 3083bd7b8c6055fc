import {
  api, getToken, setToken, clearToken, fenToYuan, fmtInt, el, qs, addDays, dayStart, showError, clearError,
  describe,
} from "./app.js";
import { platformName, platformSlugs, statusName, loadLabels } from "./labels.js";

const PAGE_SIZE = 50;

const form = document.getElementById("login-form");
const tokenInput = document.getElementById("token");
const loginPanel = document.getElementById("login-panel");
const channelsPanel = document.getElementById("channels-panel");
const table = document.getElementById("channels");
const empty = document.getElementById("channels-empty");
const more = document.getElementById("channels-more");
const filters = document.getElementById("channel-filters");
const navLinks = [document.getElementById("bureau-link"), document.getElementById("regions-link")];
const signOut = document.getElementById("sign-out");

let nextCursor = null;
// An older server ignores `limit` and sends every channel: show them a page at a time anyway.
let held = [];

function region(c) {
  return [c.district, c.township].filter(Boolean).join(" / ") || "—";
}

function filterParams() {
  const v = (id) => document.getElementById(id).value.trim();
  const day = v("filter-day");
  return {
    platform: v("filter-platform"),
    status: v("filter-status"),
    district: v("filter-district"),
    township: v("filter-township"),
    from: day ? dayStart(day) : "",
    to: day ? dayStart(addDays(day, 1)) : "",
  };
}

/** The server filters (v1.1); this repeats the cheap checks so an older server's list still obeys. */
function matches(c, f) {
  const same = (want, have) => !want || have === undefined || have === null || have === want;
  return same(f.platform, c.platform) && same(f.status, c.status) && same(f.district, c.district)
    && same(f.township, c.township);
}

function channelRow(c) {
  const id = String(c.channel_id);
  const href = `live.html?channel=${encodeURIComponent(id)}`;
  const name = el("td", { class: "name" }, el("a", { href, text: c.title || id }));
  if (c.title) name.append(el("small", { class: "slug", text: id }));
  // class names place the cells of a phone's card (style.css); data-label names its figures
  return el("tr", { "data-channel": id, "data-status": c.status || "" },
    name,
    el("td", { class: c.host ? "nowrap host" : "nowrap host none", text: c.host || "—" }),
    el("td", { class: "nowrap platform", text: platformName(c.platform), "data-platform": c.platform ?? "" }),
    el("td", { class: "state" },
      c.status ? el("span", { class: "badge", "data-status": c.status, text: statusName(c.status) }) : "—"),
    el("td", { class: "nowrap region", text: region(c) }),
    el("td", { class: "num orders", text: fmtInt(c.paid_orders), "data-value": c.paid_orders ?? "",
      "data-label": "支付订单" }),
    el("td", { class: "num gmv", text: fenToYuan(c.gmv_fen), "data-value": c.gmv_fen ?? "", "data-label": "GMV（元）" }),
  );
}

function renderChannels(channels, append) {
  const tbody = table.tBodies[0];
  if (!append) tbody.replaceChildren();
  const f = filterParams();
  const shown = channels.filter((c) => matches(c, f));
  held = shown.slice(PAGE_SIZE);
  for (const c of shown.slice(0, PAGE_SIZE)) tbody.append(channelRow(c));
  empty.hidden = tbody.rows.length > 0;
  more.hidden = !nextCursor && held.length === 0;
}

function showSignedIn(signedIn) {
  loginPanel.hidden = signedIn;
  channelsPanel.hidden = !signedIn;
  for (const a of navLinks) a.hidden = !signedIn;
  signOut.hidden = !signedIn;
}

function fillPlatforms() {
  const select = document.getElementById("filter-platform");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: "全部" }),
    ...platformSlugs().map((slug) => el("option", { value: slug, text: platformName(slug) })));
  select.value = chosen;
}

/** Offer the districts and townships of the token's scope as suggestions (GET /v1/regions, v1.1). */
async function fillRegionNames(token) {
  let body;
  try {
    body = await api("/v1/regions?level=township", { token, redirectOn401: false });
  } catch (err) {
    return; // an older server: the fields stay free text
  }
  const regions = body.regions || [];
  const names = (key) => [...new Set(regions.map((r) => r[key]).filter(Boolean))].sort();
  document.getElementById("district-names").replaceChildren(
    ...names("district").map((n) => el("option", { value: n })));
  document.getElementById("township-names").replaceChildren(
    ...names("township").map((n) => el("option", { value: n })));
}

async function fetchPage(token, cursor) {
  const params = { ...filterParams(), limit: PAGE_SIZE, cursor: cursor || "" };
  return api(`/v1/channels?${qs(params)}`, { token, redirectOn401: false });
}

async function load(token) {
  clearError();
  let body;
  try {
    body = await fetchPage(token, null);
  } catch (err) {
    if (err.status === 401) {
      clearToken();
      showSignedIn(false);
      showError("令牌无效");
    } else {
      showError(describe(err));
    }
    return false;
  }
  setToken(token);
  nextCursor = body.next_cursor || null;
  renderChannels(body.channels || [], false);
  showSignedIn(true);
  document.body.dataset.updatedAt = String(Date.now());
  loadLabels().then(fillPlatforms);
  if (!document.getElementById("district-names").options.length) fillRegionNames(token);
  return true;
}

async function loadMore() {
  if (held.length) {
    renderChannels(held, true);
    return;
  }
  if (!nextCursor) return;
  more.disabled = true;
  try {
    const body = await fetchPage(getToken(), nextCursor);
    nextCursor = body.next_cursor || null;
    renderChannels(body.channels || [], true);
    document.body.dataset.updatedAt = String(Date.now());
  } catch (err) {
    showError(describe(err));
  } finally {
    more.disabled = false;
  }
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const token = tokenInput.value.trim();
  if (!token) {
    showError("请输入令牌");
    return;
  }
  load(token);
});

filters.addEventListener("submit", (ev) => {
  ev.preventDefault();
  load(getToken());
});
filters.addEventListener("reset", () => setTimeout(() => load(getToken()), 0));
for (const id of ["filter-platform", "filter-status", "filter-day"]) {
  document.getElementById(id).addEventListener("change", () => load(getToken()));
}
more.addEventListener("click", loadMore);

signOut.addEventListener("click", () => {
  clearToken();
  tokenInput.value = "";
  table.tBodies[0].replaceChildren();
  clearError();
  showSignedIn(false);
});

fillPlatforms();
const stored = getToken();
if (stored) {
  load(stored);
} else {
  showSignedIn(false);
  // sent back here by another page after the API answered 401
  if (new URLSearchParams(window.location.search).get("reason") === "unauthorized") {
    showError("令牌无效");
  }
}
