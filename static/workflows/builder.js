// The dynamic-field picker: insert the chosen {{ reference }} at the cursor of its input.
// A condition row's value input follows its field's type (from the event catalogue, drawn in
// data-field-types): suggested values, a currency for amounts, a hint. The server reads and
// checks the value when the form is saved; this only helps while typing.
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
      // At the cursor of a field the operator has been in; at the end of any other.
      var placed = target === lastFocused && target.selectionStart != null;
      var start = placed ? target.selectionStart : target.value.length;
      var end = placed ? target.selectionEnd : target.value.length;
      target.value = target.value.slice(0, start) + text + target.value.slice(end);
      target.selectionStart = target.selectionEnd = start + text.length;
    }
    target.dispatchEvent(new Event("input", { bubbles: true }));
    target.focus();
    var picker = button.closest(".wf-picker");
    if (picker && picker.parentNode) picker.parentNode.innerHTML = "";
  });
  // Enter in the picker's search box searches; it must not submit the step form around it.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.closest && event.target.closest(".wf-picker")) {
      event.preventDefault();
    }
  });

  var PLACEHOLDERS = {
    money: "1,000.00",
    integer: "10",
    timestamp: "1700000000",
    number: "1.5",
    boolean: "true or false",
  };
  var HINTS = {
    money: "an amount in the currency beside it; stored in minor units",
    integer: "a whole number",
    timestamp: "unix seconds (UTC)",
    number: "a number",
    boolean: "true or false",
  };

  function typeRow(fieldInput) {
    var fieldset = fieldInput.closest(".wf-conditions");
    var row = fieldInput.closest(".wf-cond-row");
    if (!fieldset || !row) return;
    var types = {};
    try {
      types = JSON.parse(fieldset.dataset.fieldTypes || "{}");
    } catch (e) {
      return;
    }
    var type = types[fieldInput.value.trim()] || null;
    var kind = type ? type.kind : "";
    var value = row.querySelector(".wf-cond-value");
    if (!value || value.dataset.kind === kind) return;
    value.dataset.kind = kind;
    var currency = row.querySelector(".wf-cond-currency");
    if (currency) currency.hidden = kind !== "money";
    value.placeholder = PLACEHOLDERS[kind] || "value (lists: US, CA)";
    if (kind === "money" || kind === "number") value.inputMode = "decimal";
    else if (kind === "integer" || kind === "timestamp") value.inputMode = "numeric";
    else value.removeAttribute("inputmode");
    var options = kind === "boolean" ? ["true", "false"] : kind === "enum" ? type.choices : [];
    var listId = value.id + "-options";
    var list = document.getElementById(listId);
    if (list) list.remove();
    value.removeAttribute("list");
    if (options.length) {
      list = document.createElement("datalist");
      list.id = listId;
      options.forEach(function (option) {
        var item = document.createElement("option");
        item.value = option;
        list.appendChild(item);
      });
      value.after(list);
      value.setAttribute("list", listId);
    }
    var hint = row.querySelector(".wf-cond-hint");
    if (hint) {
      hint.textContent =
        kind === "enum" && options.length <= 12 ? "one of " + options.join(", ") : HINTS[kind] || "";
    }
  }
  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches(".wf-cond-field")) typeRow(event.target);
  });
})();
