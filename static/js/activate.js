// The activation link carries its token in the fragment (/activate/#<token>), which the
// browser never sends to a server, so no access log holds it. Post it, and drop it from
// the address bar and the history first.
(function () {
  "use strict";
  var form = document.getElementById("activation-open");
  var field = document.getElementById("activation-token");
  if (!form || !field) {
    return;
  }
  var token = window.location.hash.replace(/^#/, "");
  if (window.history && window.history.replaceState) {
    window.history.replaceState(null, "", window.location.pathname);
  }
  if (token) {
    field.value = token;
    form.submit();
  }
})();
