// Passkeys (WebAuthn): register one, or sign in with one. No inline script (the pages'
// CSP allows only our own files). A button says what to do with data-* attributes:
// data-passkey="register" | "authenticate", data-options and data-finish (our endpoints),
// data-csrf (the form token, sent as X-CSRF-Token).
(function () {
  "use strict";

  function toBytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(o) {
    o.challenge = toBytes(o.challenge);
    o.user.id = toBytes(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return o;
  }

  function requestOptions(o) {
    o.challenge = toBytes(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return o;
  }

  function credentialJson(cred) {
    var r = cred.response, out = {
      id: cred.id, rawId: toB64url(cred.rawId), type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64url(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = toB64url(r.attestationObject);
      if (r.getTransports) { out.response.transports = r.getTransports(); }
    } else {
      out.response.authenticatorData = toB64url(r.authenticatorData);
      out.response.signature = toB64url(r.signature);
      if (r.userHandle) { out.response.userHandle = toB64url(r.userHandle); }
    }
    return out;
  }

  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) { throw new Error(data.error || "The passkey could not be used."); }
        return data;
      });
    });
  }

  function run(button) {
    var mode = button.getAttribute("data-passkey");
    var csrf = button.getAttribute("data-csrf");
    var status = document.querySelector("[data-passkey-status]");
    if (!window.PublicKeyCredential) {
      if (status) { status.textContent = "This browser does not support passkeys."; status.hidden = false; }
      return;
    }
    button.disabled = true;
    post(button.getAttribute("data-options"), csrf, {}).then(function (options) {
      return mode === "register"
        ? navigator.credentials.create({ publicKey: creationOptions(options) })
        : navigator.credentials.get({ publicKey: requestOptions(options) });
    }).then(function (cred) {
      return post(button.getAttribute("data-finish"), csrf, { credential: credentialJson(cred) });
    }).then(function (data) {
      window.location.assign(data.redirect || "/sso/security");
    }).catch(function (err) {
      button.disabled = false;
      if (status) { status.textContent = err.message || "The passkey could not be used."; status.hidden = false; }
    });
  }

  document.querySelectorAll("[data-passkey]").forEach(function (button) {
    button.addEventListener("click", function () { run(button); });
  });
}());
