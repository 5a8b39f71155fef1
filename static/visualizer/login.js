// Sign-in keeps a link's #fragment (a run page's step and watched path): the browser kept
// it through the redirect to this page but never sends it to the server, so it is added
// to the page the form returns to.
const next = document.querySelector(".login input[name=next]");
if (next && next.value && location.hash.length > 1 && !next.value.includes("#")) {
  next.value += location.hash;
}
