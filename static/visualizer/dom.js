// DOM helpers shared by the page scripts. Trace strings only ever go in as text.

export function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

// An element with a class and text content (never HTML), and optional children.
export function el(tag, className, text, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  node.append(...children);
  return node;
}

// Put `text` on the clipboard: true when it is there. Without the clipboard API (a page
// served over plain HTTP, or permission refused) the text is shown in a textarea after
// `anchor`, selected for the user to copy; false then.
export async function copyText(text, anchor) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    let box = anchor.parentElement.querySelector("textarea.copy-fallback");
    if (!box) {
      box = el("textarea", "copy-fallback");
      box.readOnly = true;
      box.setAttribute("aria-label", "Text to copy");
      anchor.parentElement.append(box);
    }
    box.value = text;
    box.focus();
    box.select();
    return false;
  }
}

// An id short enough for a list that still tells apart runs sharing a prefix: its start
// and its end (visualizer/templatetags/ids.py short_id is the same rule).
export function shortId(id) {
  return id.length <= 16 ? id : `${id.slice(0, 9)}…${id.slice(-6)}`;
}
