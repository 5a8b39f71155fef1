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
