// The sync-health page: "select all" boxes and a confirmation before destructive actions.
document.addEventListener("change", (event) => {
  const box = event.target;
  if (box.matches && box.matches("input[data-select-all]")) {
    document.querySelectorAll("input[name=ids]").forEach((el) => { el.checked = box.checked; });
  }
});
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const question = (button && button.dataset.confirm) || event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
