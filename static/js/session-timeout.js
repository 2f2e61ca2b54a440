// Warn before the idle time-out of a logged-in session, and let the person stay logged in.
// The limits come from data attributes on the dialog in base.html (no inline script: the CSP
// refuses it). When the time is up the page is loaded again: the server, which has ended the
// session by then, sends the browser to its login page with `next` = this page.
(function () {
  "use strict";
  var dialog = document.querySelector("dialog[data-session-timer]");
  if (!dialog || typeof dialog.showModal !== "function" || !window.fetch) {
    return;
  }
  function seconds(name) {
    return (Number(dialog.getAttribute(name)) || 0) * 1000;
  }
  function clock() {
    return window.performance.now();
  }
  // Past the server's own limit, so that the session has certainly ended when the page reloads.
  var GRACE = 1500;
  var idleLimit = seconds("data-idle-limit");
  var warning = seconds("data-warning");
  var start = clock();
  var absoluteDeadline = start + seconds("data-absolute-left");
  var deadline = Math.min(start + seconds("data-idle-left"), absoluteDeadline);
  var countdown = dialog.querySelector("[data-session-countdown]");
  var stay = dialog.querySelector("[data-session-stay]");
  var form = stay.form;
  var warnTimer = null;
  var endTimer = null;
  var ticker = null;

  function leave() {
    window.location.assign(window.location.href.split("#")[0]);
  }

  function showLeft() {
    var left = Math.max(0, Math.ceil((deadline - clock()) / 1000));
    var rest = left % 60;
    countdown.textContent = Math.floor(left / 60) + ":" + (rest < 10 ? "0" : "") + rest;
  }

  function warn() {
    // "Stay logged in" cannot move the absolute limit: hide it once that is what is near.
    stay.hidden = absoluteDeadline - clock() <= warning;
    showLeft();
    window.clearInterval(ticker);
    ticker = window.setInterval(showLeft, 1000);
    if (!dialog.open) {
      dialog.showModal();
    }
    if (stay.hidden) {
      dialog.focus();
    } else {
      stay.focus();
    }
  }

  function schedule() {
    var now = clock();
    window.clearTimeout(warnTimer);
    window.clearTimeout(endTimer);
    warnTimer = window.setTimeout(warn, Math.max(0, deadline - warning - now));
    endTimer = window.setTimeout(leave, Math.max(0, deadline - now + GRACE));
  }

  function stayLoggedIn() {
    stay.disabled = true;
    window.fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      redirect: "manual",
    }).then(function (response) {
      stay.disabled = false;
      if (response.status !== 204) {
        leave();
        return;
      }
      deadline = Math.min(clock() + idleLimit, absoluteDeadline);
      window.clearInterval(ticker);
      dialog.close();
      schedule();
    }, leave);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    stayLoggedIn();
  });
  // Escape closes a modal dialog; whoever pressed it is there, so it counts as staying.
  dialog.addEventListener("cancel", function (event) {
    event.preventDefault();
    if (!stay.hidden && !stay.disabled) {
      stayLoggedIn();
    }
  });
  schedule();
}());
