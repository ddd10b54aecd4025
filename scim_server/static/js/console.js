// The console's few behaviours that need script (no inline script: the CSP forbids it).
// Everything here is an enhancement: the pages work without it.
(function () {
  "use strict";

  // "Select all" checkbox of a bulk-action table: data-select-all="NAME" ticks every
  // checkbox named NAME in the same form.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!(box instanceof HTMLInputElement) || !box.dataset.selectAll) return;
    var form = box.form || box.closest("form");
    if (!form) return;
    form.querySelectorAll('input[type=checkbox][name="' + box.dataset.selectAll + '"]')
      .forEach(function (other) { other.checked = box.checked; });
  });

  // Copy buttons: data-copy="ELEMENT_ID" copies that element's text.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    var source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      button.textContent = "Copied";
    });
  });
})();
