// The dynamic-field picker: insert the chosen {{ reference }} at the cursor of its input.
// Everything else in the builder is links, forms and htmx attributes.
(function () {
  "use strict";
  var lastFocused = null;
  document.addEventListener("focusin", function (event) {
    var el = event.target;
    if (el.matches && el.matches("input[type=text], textarea")) lastFocused = el;
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".wf-pick");
    if (!button) return;
    event.preventDefault();
    var target = document.getElementById(button.dataset.target) || lastFocused;
    if (!target) return;
    var text = button.dataset.insert;
    var bare = !/^\{\{/.test(text);
    if (bare) {
      target.value = text; // a condition's field is a path, not a template
    } else {
      var start = target.selectionStart == null ? target.value.length : target.selectionStart;
      var end = target.selectionEnd == null ? target.value.length : target.selectionEnd;
      target.value = target.value.slice(0, start) + text + target.value.slice(end);
      target.selectionStart = target.selectionEnd = start + text.length;
    }
    target.dispatchEvent(new Event("input", { bubbles: true }));
    target.focus();
    var picker = button.closest(".wf-picker");
    if (picker && picker.parentNode) picker.parentNode.innerHTML = "";
  });
})();
