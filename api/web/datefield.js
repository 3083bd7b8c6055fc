// Date inputs that read 年/月/日 whatever language the browser speaks (issue 21 item 6).
//
// A browser draws <input type="date"> in its own UI language, not the page's: Chromium with
// an English UI shows mm/dd/yyyy even under <html lang="zh-CN"> (and Debian's chromium
// without chromium-l10n has no other locale at all). A bureau PC set up in English would
// show the cadres a US date. So every date input keeps its native control (value, events,
// the calendar picker, form submission) with the browser's own text made invisible, and a
// face drawn over it shows what a Chinese browser shows: 年/月/日 when empty, 2020/02/29 when
// set. The face follows the value however it changes: typing, the picker, a script's
// `input.value = …` (the property is wrapped per input), a form reset. Inputs added later
// (a section loaded on demand) are enhanced too. Loaded as a module by every page that has
// date inputs, before that page's own script.

const NATIVE = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value");
export const PLACEHOLDER = "年/月/日";

/** What a Chinese browser shows for a date input's value. */
export function faceText(value) {
  const m = /^(\d{4,})-(\d{2})-(\d{2})$/.exec(String(value || ""));
  return m ? `${m[1]}/${m[2]}/${m[3]}` : PLACEHOLDER;
}

function enhance(input) {
  if (input.dataset.zhDate) return;
  input.dataset.zhDate = "1";
  input.lang = "zh-CN";
  const wrap = document.createElement("span");
  wrap.className = "date-zh";
  const face = document.createElement("span");
  face.className = "date-face";
  face.setAttribute("aria-hidden", "true"); // screen readers read the native control
  input.replaceWith(wrap);
  wrap.append(input, face);
  const update = () => {
    const value = NATIVE.get.call(input);
    face.textContent = faceText(value);
    face.classList.toggle("empty", !value);
  };
  Object.defineProperty(input, "value", {
    configurable: true,
    get() {
      return NATIVE.get.call(this);
    },
    set(v) {
      NATIVE.set.call(this, v);
      update();
    },
  });
  input.addEventListener("input", update);
  input.addEventListener("change", update);
  if (input.form) input.form.addEventListener("reset", () => setTimeout(update));
  // the browser's own fields are invisible: a tap anywhere opens the calendar instead
  input.addEventListener("click", () => {
    try {
      input.showPicker();
    } catch (e) {
      /* no showPicker (older browser) or not allowed: the native field still takes typing */
    }
  });
  update();
}

/** Enhance every date input under root, now and whenever more are added. */
export function zhDates(root = document) {
  for (const input of root.querySelectorAll('input[type="date"]')) enhance(input);
  new MutationObserver((records) => {
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (n.nodeType !== 1) continue;
        if (n.matches('input[type="date"]')) enhance(n);
        else for (const input of n.querySelectorAll('input[type="date"]')) enhance(input);
      }
    }
  }).observe(root.body || root, { childList: true, subtree: true });
}

zhDates();
