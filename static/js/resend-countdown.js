// Count down to when another emailed code may be asked for, then enable "Email me a new code".
// The server renders the button disabled with the time in words, so the page works without
// this script; the script only adds the countdown and the enabling. No inline script: the CSP
// refuses it.
(function () {
  "use strict";
  var button = document.querySelector("button[data-resend-wait]");
  if (!button) {
    return;
  }
  var later = document.querySelector("[data-resend-later]");
  var countdown = document.querySelector("[data-resend-countdown]");
  var ready = document.querySelector("[data-resend-ready]");
  // A wait in seconds, not a time of day: the browser's clock may differ from the server's.
  var enableAt = window.performance.now() + (Number(button.getAttribute("data-resend-wait")) || 0) * 1000;
  var ticker = null;

  function update() {
    var left = Math.ceil((enableAt - window.performance.now()) / 1000);
    if (left <= 0) {
      window.clearInterval(ticker);
      button.disabled = false;
      button.removeAttribute("aria-describedby");
      if (later) {
        later.hidden = true;
      }
      if (ready) {
        ready.textContent = ready.getAttribute("data-text");
      }
      return;
    }
    if (countdown) {
      var words = countdown.getAttribute(left === 1 ? "data-one" : "data-other") || "";
      countdown.textContent = words.replace("{n}", String(left));
      countdown.hidden = false;
    }
  }

  update();
  ticker = window.setInterval(update, 250);
}());
