// "@" in a comment box offers the project's members: type @ and the first letters, pick
// one with the arrow keys and Enter or Tab (or the mouse); Escape closes the list. The
// names come from the caller (the review panel has them from its review answer), so this
// spells no URL. What counts as a mention is traces/markdown.py's MENTION_RE.
import { el } from "./dom.js";

// The "@partial" just before the caret, as MENTION_RE would start one.
const TYPING = /(?:^|[^\w@.+-])@([\w.+-]*)$/;
const SHOWN = 8;

export function attachMentions(textarea, names) {
  const box = el("div", "mention-box");
  textarea.replaceWith(box);
  box.append(textarea);
  const menu = el("ul", "mention-menu");
  menu.id = `${textarea.id || "comment"}-mentions`;
  menu.setAttribute("role", "listbox");
  menu.hidden = true;
  box.append(menu);
  let choices = [];
  let current = 0;
  let start = -1; // where the "@" is

  function close() {
    menu.hidden = true;
    choices = [];
  }

  function render() {
    menu.replaceChildren(
      ...choices.map((name, i) => {
        const item = el("li", i === current ? "on" : null, `@${name}`);
        item.setAttribute("role", "option");
        item.dataset.name = name;
        // mousedown, not click: the textarea keeps its focus and caret.
        item.addEventListener("mousedown", (event) => {
          event.preventDefault();
          accept(name);
        });
        return item;
      }),
    );
    menu.hidden = choices.length === 0;
  }

  function update() {
    const caret = textarea.selectionStart;
    const typed = textarea.value.slice(0, caret).match(TYPING);
    if (!typed || textarea.selectionEnd !== caret) return close();
    const partial = typed[1].toLowerCase();
    start = caret - typed[1].length - 1;
    choices = names()
      .filter((name) => name.toLowerCase().startsWith(partial) && name.toLowerCase() !== partial)
      .slice(0, SHOWN);
    current = 0;
    render();
  }

  function accept(name) {
    const caret = textarea.selectionStart;
    const before = textarea.value.slice(0, start);
    const after = textarea.value.slice(caret);
    textarea.value = `${before}@${name} ${after}`;
    const at = before.length + name.length + 2;
    textarea.setSelectionRange(at, at);
    close();
    textarea.focus();
  }

  textarea.addEventListener("input", update);
  textarea.addEventListener("click", update);
  textarea.addEventListener("blur", close);
  textarea.addEventListener("keydown", (event) => {
    if (menu.hidden) return;
    const keys = {
      ArrowDown: () => { current = (current + 1) % choices.length; render(); },
      ArrowUp: () => { current = (current - 1 + choices.length) % choices.length; render(); },
      Enter: () => accept(choices[current]),
      Tab: () => accept(choices[current]),
      Escape: close,
    };
    const act = keys[event.key];
    if (!act || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    // The page's own keys (Ctrl+Enter sends, j/k move) do not see this one.
    event.stopImmediatePropagation();
    act();
  });
}
