import {
  api, getToken, setToken, clearToken, fenToYuan, fmtInt, el, showError, clearError, describe,
} from "./app.js";

const form = document.getElementById("login-form");
const tokenInput = document.getElementById("token");
const loginPanel = document.getElementById("login-panel");
const channelsPanel = document.getElementById("channels-panel");
const table = document.getElementById("channels");
const empty = document.getElementById("channels-empty");
const bureauLink = document.getElementById("bureau-link");
const signOut = document.getElementById("sign-out");

function region(c) {
  return [c.district, c.township].filter(Boolean).join(" / ") || "—";
}

function renderChannels(channels) {
  const tbody = table.tBodies[0];
  tbody.replaceChildren();
  for (const c of channels) {
    const id = String(c.channel_id);
    tbody.append(el("tr", { "data-channel": id },
      el("td", {}, el("a", { href: `live.html?channel=${encodeURIComponent(id)}`, text: id })),
      el("td", { text: c.platform || "—" }),
      el("td", { text: region(c) }),
      el("td", { class: "num", text: fmtInt(c.paid_orders), "data-value": c.paid_orders ?? "" }),
      el("td", { class: "num", text: fenToYuan(c.gmv_fen), "data-value": c.gmv_fen ?? "" }),
    ));
  }
  empty.hidden = channels.length > 0;
}

function showSignedIn(signedIn) {
  loginPanel.hidden = signedIn;
  channelsPanel.hidden = !signedIn;
  bureauLink.hidden = !signedIn;
  signOut.hidden = !signedIn;
}

async function load(token) {
  clearError();
  let body;
  try {
    body = await api("/v1/channels", { token, redirectOn401: false });
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
  renderChannels(body.channels || []);
  showSignedIn(true);
  document.body.dataset.updatedAt = String(Date.now());
  return true;
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

signOut.addEventListener("click", () => {
  clearToken();
  tokenInput.value = "";
  table.tBodies[0].replaceChildren();
  clearError();
  showSignedIn(false);
});

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
