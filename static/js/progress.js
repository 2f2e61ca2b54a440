// Poll the progress of work done in the background (a bulk email file being checked, an
// audit trail export being written) and reload the page once it has finished.
// The section names its progress URL (data-progress-url) and says whether the work is
// still going (data-progress-pending="yes"); the JSON answers percent, processed, total, done.
(function () {
  "use strict";
  var section = document.querySelector("[data-progress-url][data-progress-pending='yes']");
  if (!section) { return; }
  var bar = section.querySelector("progress");
  var text = section.querySelector("[data-progress-text]");
  var url = section.dataset.progressUrl;
  var polls = 0;
  function poll() {
    polls += 1;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        bar.value = data.percent;
        bar.textContent = data.percent + "%";
        if (text) { text.textContent = data.processed + " / " + data.total; }
        if (data.done) { window.location.reload(); return; }
        if (polls < 3600) { window.setTimeout(poll, 1000); }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 500);
}());
