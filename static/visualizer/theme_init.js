// The theme chosen with the top bar's toggle, applied before the first paint: a classic
// script in <head> (the Content-Security-Policy allows no inline code), run before the
// body is parsed, so a page never flashes light before turning dark. No choice stored
// means the system's (prefers-color-scheme, in app.css). theme.js owns the toggle.
(function () {
  try {
    var theme = window.localStorage.getItem("theme");
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  } catch (e) {
    // Storage refused (privacy settings): the system's theme.
  }
})();
