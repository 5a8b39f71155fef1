// Light or dark: the top bar's toggle (system, light, dark; kept in localStorage and
// applied before first paint by theme_init.js) and Plotly figures in the page's colours.
//
// Python builds every figure without a colour of its own for backgrounds, text or grid,
// and names its other colours as CSS variables ("var(--chart-fail)"): themed() resolves
// them from app.css for the theme shown and fills in the font, grid and axis colours, so
// a chart follows the theme like the rest of the page. Every chart script draws through
// themed() and draws again on onThemeChange() (the toggle, the system's setting, or
// another tab's toggle).

const KEY = "theme";
const CHOICES = ["system", "light", "dark"];
const ICONS = { system: "◐", light: "☀", dark: "☾" };
const NAMES = { system: "System", light: "Light", dark: "Dark" };
const media = window.matchMedia("(prefers-color-scheme: dark)");
const root = document.documentElement;

export function chosen() {
  return CHOICES.includes(root.dataset.theme) ? root.dataset.theme : "system";
}

export function isDark() {
  const theme = chosen();
  return theme === "dark" || (theme === "system" && media.matches);
}

export function onThemeChange(callback) {
  document.addEventListener("themechange", () => callback(isDark()));
}

function changed() {
  document.dispatchEvent(new CustomEvent("themechange"));
}

function apply(theme) {
  if (theme === "light" || theme === "dark") root.dataset.theme = theme;
  else delete root.dataset.theme;
  showChoice();
  changed();
}

export function choose(theme) {
  try {
    if (theme === "light" || theme === "dark") localStorage.setItem(KEY, theme);
    else localStorage.removeItem(KEY);
  } catch {
    // Not kept (storage refused), still applied to this page.
  }
  apply(theme);
}

function showChoice() {
  const button = document.getElementById("theme-toggle");
  if (!button) return;
  const theme = chosen();
  const next = CHOICES[(CHOICES.indexOf(theme) + 1) % CHOICES.length];
  // The symbol is decoration: a screen reader says "Theme: System" (Light, Dark).
  const icon = document.createElement("span");
  icon.setAttribute("aria-hidden", "true");
  icon.textContent = `${ICONS[theme]} `;
  button.replaceChildren(icon, NAMES[theme]);
  button.setAttribute("aria-label", `Theme: ${NAMES[theme]}`);
  button.dataset.choice = theme;
  button.title = `Theme: ${theme}${theme === "system" ? ` (${isDark() ? "dark" : "light"})` : ""}. Click for ${next}.`;
}

// Figures -------------------------------------------------------------------------------

const VARIABLE = /^var\((--[\w-]+)\)$/;
const AXIS = /^[xy]axis\d*$/;

// A copy of value with every "var(--name)" string replaced by the variable's value; what
// holds none is returned as it is (the data arrays of a large figure are not copied).
function resolve(value, read) {
  if (typeof value === "string") {
    const found = VARIABLE.exec(value);
    return found ? read(found[1]) : value;
  }
  if (Array.isArray(value)) {
    let copy = null;
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (typeof item === "number") continue;
      const next = resolve(item, read);
      if (next !== item) (copy ??= value.slice())[i] = next;
    }
    return copy ?? value;
  }
  if (value && typeof value === "object") {
    let copy = null;
    for (const key of Object.keys(value)) {
      const next = resolve(value[key], read);
      if (next !== value[key]) (copy ??= { ...value })[key] = next;
    }
    return copy ?? value;
  }
  return value;
}

// The figure in the page's current colours: [data, layout] for Plotly.react.
export function themed(data, layout) {
  const style = getComputedStyle(root);
  const seen = new Map();
  const read = (name) => {
    if (!seen.has(name)) seen.set(name, style.getPropertyValue(name).trim());
    return seen.get(name);
  };
  const resolved = resolve(layout, read);
  const ink = read("--chart-ink");
  const lines = { gridcolor: read("--chart-grid"), zerolinecolor: read("--chart-axis"), linecolor: read("--chart-axis"), tickcolor: read("--chart-axis") };
  const out = {
    ...resolved,
    // Transparent: the card's background shows through, whatever the theme.
    paper_bgcolor: "transparent",
    plot_bgcolor: "transparent",
    font: { ...resolved.font, color: resolved.font?.color ?? ink },
    xaxis: { ...lines, ...resolved.xaxis },
    yaxis: { ...lines, ...resolved.yaxis },
  };
  for (const key of Object.keys(resolved)) {
    if (AXIS.test(key) && key !== "xaxis" && key !== "yaxis") out[key] = { ...lines, ...resolved[key] };
  }
  return [resolve(data, read), out];
}

// The toggle -----------------------------------------------------------------------------

document.getElementById("theme-toggle")?.addEventListener("click", () => {
  choose(CHOICES[(CHOICES.indexOf(chosen()) + 1) % CHOICES.length]);
});
// The system's setting matters only while the choice is "system".
media.addEventListener("change", () => {
  if (chosen() === "system") { showChoice(); changed(); }
});
// Another tab chose: this one follows.
window.addEventListener("storage", (event) => {
  if (event.key === KEY || event.key === null) apply(event.newValue);
});
showChoice();
