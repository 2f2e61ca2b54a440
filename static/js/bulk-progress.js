// Poll the checking progress of a bulk email file and reload once it is done.
(function () {
  "use strict";
  var section = document.getElementById("bulk");
  if (!section || section.dataset.status !== "validating") { return; }
  var bar = document.getElementById("bulk-progress");
  var text = document.getElementById("bulk-progress-text");
  var url = section.dataset.progressUrl;
  var polls = 0;
  function poll() {
    polls += 1;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        bar.value = data.percent;
        bar.textContent = data.percent + "%";
        text.textContent = data.processed + " / " + data.total;
        if (data.done) { window.location.reload(); return; }
        if (polls < 3600) { window.setTimeout(poll, 1000); }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 500);
}());
