// A form with data-confirm asks before it submits: removing a member, revoking a key or
// deleting a rule takes a second, deliberate click.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset?.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
