/* Security keys and passkeys (WebAuthn). A form marked data-webauthn="create" or "get" asks the
   server for options (POST to data-options-url, with the form's CSRF token in the X-CSRFToken
   header), lets the browser talk to the key (navigator.credentials.create / get), puts the answer
   as JSON in the form's hidden *credential field and sends the form. The server verifies.
   Forms start hidden and a plain "your browser cannot" message shows; where the browser has
   WebAuthn, this swaps them. */
(function () {
  "use strict";

  function toBuffer(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var text = atob(base64);
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) { bytes[i] = text.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBuffers(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBuffer(item.id), transports: item.transports };
    });
  }

  function creationOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBuffer(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBuffer(json.user.id) });
    options.excludeCredentials = withBuffers(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBuffer(json.challenge);
    options.allowCredentials = withBuffers(json.allowCredentials);
    return options;
  }

  function credentialJSON(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toBase64url(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      json.response.attestationObject = toBase64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      json.response.userHandle = response.userHandle ? toBase64url(response.userHandle) : null;
    }
    return json;
  }

  function explain(error) {
    if (error && error.name === "NotAllowedError") {
      return "The security key request was cancelled or timed out. Try again, or use another way to sign in.";
    }
    if (error && error.name === "InvalidStateError") {
      return "That security key is already registered to your account.";
    }
    if (error && error.fromServer) { return error.message; }
    return "Your security key could not be used. Try again, or use another way to sign in.";
  }

  function start(form) {
    var status = form.querySelector("[data-webauthn-status]");
    var button = form.querySelector("button[type=submit]");
    var credential = form.querySelector("input[name$='credential']");
    var csrf = form.querySelector("input[name$='csrf_token']");
    var name = form.querySelector("input[name$='name']");
    var busy = false;

    form.addEventListener("submit", function (event) {
      // A registration without a name goes to the server as it is: the error appears by the field.
      if (name && !name.value.trim()) { return; }
      event.preventDefault();
      if (busy) { return; }
      busy = true;
      button.disabled = true;
      status.textContent = "Follow your browser's instructions to use your security key or passkey.";
      var url = form.getAttribute("data-options-url");
      var passkey = form.querySelector("input[data-passkey]");
      if (passkey && passkey.checked) { url += (url.indexOf("?") < 0 ? "?" : "&") + "passkey=1"; }
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrf ? csrf.value : "", "Accept": "application/json" }
      }).then(function (reply) {
        return reply.json().then(function (body) {
          if (!reply.ok) {
            var problem = new Error(body.error || body.error_description || "Please reload the page and try again.");
            problem.fromServer = true;
            throw problem;
          }
          return body;
        });
      }).then(function (options) {
        if (form.getAttribute("data-webauthn") === "create") {
          return navigator.credentials.create({ publicKey: creationOptions(options) });
        }
        return navigator.credentials.get({ publicKey: requestOptions(options) });
      }).then(function (answer) {
        credential.value = JSON.stringify(credentialJSON(answer));
        status.textContent = "Checking your security key…";
        form.submit();
      }).catch(function (error) {
        busy = false;
        button.disabled = false;
        status.textContent = explain(error);
        button.focus();
      });
    });
  }

  var supported = typeof window.PublicKeyCredential !== "undefined" && navigator.credentials && window.fetch;
  if (!supported) { return; }
  var forms = document.querySelectorAll("form[data-webauthn]");
  for (var i = 0; i < forms.length; i++) {
    var unsupported = forms[i].parentNode.querySelectorAll("[data-webauthn-unsupported]");
    for (var j = 0; j < unsupported.length; j++) { unsupported[j].hidden = true; }
    forms[i].hidden = false;
    start(forms[i]);
  }
}());
