// DOM helpers shared by the page scripts. Trace strings only ever go in as text.

export function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}
