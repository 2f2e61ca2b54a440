// Copy the text of an element to the clipboard from a button marked data-copy="<element id>",
// and say so in the element marked data-copy-status. No inline handler: the CSP refuses it.
// The button's wrapper (data-copy-wrap) stays hidden where the browser has no clipboard
// access (an address that is not https or localhost): selecting the text still works there.
(function () {
  "use strict";
  if (!navigator.clipboard || !window.isSecureContext) {
    return;
  }
  document.querySelectorAll("[data-copy-wrap]").forEach(function (wrap) {
    wrap.hidden = false;
  });
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    var status = document.querySelector("[data-copy-status]");
    if (!source) {
      return;
    }
    button.addEventListener("click", function () {
      // Each <code> on a line of its own; an element without any gives its whole text.
      var parts = Array.prototype.map.call(source.querySelectorAll("code"), function (code) {
        return code.textContent.trim();
      });
      var text = parts.length ? parts.join("\n") : source.textContent.trim();
      navigator.clipboard.writeText(text).then(
        function () {
          if (status) { status.textContent = button.getAttribute("data-copied") || ""; }
        },
        function () {
          if (status) { status.textContent = button.getAttribute("data-copy-failed") || ""; }
        }
      );
    });
  });
}());
