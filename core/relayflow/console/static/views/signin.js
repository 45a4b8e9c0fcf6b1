// The sign-in view: an access key id and secret, or a console token from
// `relayflow console token`.

import { signIn } from "../api.js";
import { fill, h, note } from "../dom.js";
import { field } from "../dialog.js";

/** Renders the sign-in form into `main`; `done()` runs once signed in. */
export function renderSignIn(main, done, reason) {
  const keyId = h("input", { name: "accessKeyId", autocomplete: "username", required: true, "data-test": "signin-key-id" });
  const secret = h("input", { name: "accessKeySecret", type: "password", autocomplete: "current-password", required: true, "data-test": "signin-secret" });
  const token = h("input", { name: "token", autocomplete: "off", spellcheck: "false", "data-test": "signin-token" });
  const message = h("div", { "aria-live": "assertive" }, reason ? note("info", reason, "signin-reason") : null);
  const button = h("button", { type: "submit", class: "primary", "data-test": "signin-submit" }, "Sign in");
  let mode = "key";
  const keyPart = h("div", {}, field("Access key id", keyId), field("Access key secret", secret));
  const tokenPart = h("div", { hidden: true }, field("Console token", token, "Print one with: relayflow console token"));
  const switcher = h("button", { type: "button", class: "link-button", "data-test": "signin-switch" }, "Sign in with a token");
  switcher.addEventListener("click", () => {
    mode = mode === "key" ? "token" : "key";
    keyPart.hidden = mode !== "key";
    tokenPart.hidden = mode !== "token";
    switcher.textContent = mode === "key" ? "Sign in with a token" : "Sign in with an access key";
    (mode === "key" ? keyId : token).focus();
  });
  const form = h("form", { class: "signin", novalidate: true, "aria-labelledby": "signin-title", "data-test": "signin-form" },
    h("h1", { id: "signin-title" }, "Sign in to relayflow"),
    h("p", { class: "muted" }, "Your access key's role decides what you may do: readers see, workers report tasks, admins do everything."),
    keyPart, tokenPart, message,
    h("div", { class: "form-buttons" }, button, switcher));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const credentials = mode === "key"
      ? { accessKeyId: keyId.value.trim(), accessKeySecret: secret.value }
      : { token: token.value.trim() };
    if (mode === "key" ? !credentials.accessKeyId || !credentials.accessKeySecret : !credentials.token) {
      fill(message, note("error", mode === "key" ? "Give both the access key id and its secret." : "Paste the token `relayflow console token` printed.", "signin-error"));
      return;
    }
    button.disabled = true;
    try {
      await signIn(credentials);
      secret.value = "";
      done();
    } catch (error) {
      fill(message, note("error", error.message, "signin-error"));
      button.disabled = false;
    }
  });
  fill(main, form);
  keyId.focus();
}
