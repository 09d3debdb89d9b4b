"""What a reload keeps never includes card numbers or secrets (issue 36, 6):
fields with autocomplete="cc-…", and fields whose name or id is a secret's
(pin, cvv, cvc, csc, passphrase, secret, token, api_key/apikey, pass, pw,
otp, mfa, senha), and a field that took a password's place; a field
merely containing such letters ("shipping") is still kept."""

import json

from conftest import SCALE, free_port, module, open_page

SECRETS = {  # id: (attributes, typed value)
    "card": ('name="number" autocomplete="cc-number"', "4111111111111111"),
    "expiry": ('name="exp" autocomplete="section-pay billing cc-exp"', "12/29"),
    "cardPin": ('name="cardPin"', "4921"),
    "pin": ('name="pin" inputmode="numeric"', "8361"),
    "cvv": ('name="card-cvv"', "737"),
    "cvc": ('name="cvc"', "738"),
    "csc": ('name="csc"', "739"),
    "phrase": ('name="passphrase"', "correct horse battery"),
    "secret": ('name="client_secret"', "s3cr3t-value"),
    "token": ('name="token"', "tok_abcdef123"),
    "api": ('name="api_key"', "sk_live_abcdef"),
    "apikey": ('name="apikey"', "ak_live_ghijkl"),
    "apiKey2": ('name="x"', "AKIAEXAMPLE"),
    # r36a4: kept before
    "pass": ('name="pass"', "pass-value-1"),
    "userPw": ('name="user_pw"', "pw-value-22"),
    "otp": ('name="otp"', "otp918273q"),
    "mfa": ('name="mfa_code"', "mfa564738q"),
    "senha": ('name="senha"', "senha-valor"),
    "swapped": ('type="password"', "SECRET-shown"),  # replaced by a text field with its id (a "show" button)
}
SWAP = """() => { const old = document.getElementById('swapped'), shown = document.createElement('input');
  shown.id = 'swapped'; shown.value = old.value; old.replaceWith(shown); }"""
KEPT = {"name": "Ada Lovelace", "shipping": "12 Main Street"}
FORM = ("<!doctype html><html><head><meta charset='utf-8'><title>pay</title></head><body><h1 id='title'>v1</h1>"
        "<form id='f'>" + "".join(f'<input id="{i}" {attrs}>' for i, (attrs, _) in SECRETS.items())
        + "".join(f'<input id="{i}" name="{i}">' for i in KEPT) + "</form></body></html>")
TYPED = {**{i: v for i, (_, v) in SECRETS.items()}, **KEPT}
# Every value the snippet writes to its storage, logged beside it (the state
# written at the reload is taken back after it, so reading the storage then
# would prove nothing).
LOG_WRITES = """
const setItem = Storage.prototype.setItem;
Storage.prototype.setItem = function (key, value) {
  if (key === "sigreload") setItem.call(this, "written", (this.getItem("written") || "") + value + "\\n");
  return setItem.call(this, key, value);
};"""


def leaves(value):
    """The strings and numbers in a JSON value, keys included."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in [k, *leaves(v)]]
    if isinstance(value, list):
        return [leaf for v in value for leaf in leaves(v)]
    return [str(value)]


def test_a_reload_never_keeps_card_numbers_or_secrets(procs, tmp_path, page):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(FORM)
    web, ws = free_port(), free_port()
    main = procs(module("sigreload") + [site, "--port", web, "--ws-port", ws])
    main.wait_stack()  # the watcher's first look too: an edit before it is no change
    main.wait_seen("ready on ws://")
    page.add_init_script(LOG_WRITES)
    open_page(page, f"http://127.0.0.1:{web}/")
    page.evaluate("(typed) => Object.entries(typed).forEach(([id, v]) => { document.getElementById(id).value = v; })",
                  TYPED)
    page.evaluate(SWAP)
    with page.expect_event("load", timeout=10_000 * SCALE):
        (site / "index.html").write_text(FORM.replace("v1", "v2"))
    page.wait_for_function("() => document.getElementById('name').value === 'Ada Lovelace'")
    values = page.evaluate("(ids) => Object.fromEntries(ids.map((id) => [id, document.getElementById(id).value]))",
                           list(TYPED))
    assert values == {**dict.fromkeys(SECRETS, ""), **KEPT}
    written = [json.loads(line) for line in page.evaluate("sessionStorage.getItem('written')").splitlines()]
    kept = [leaf for w in written for leaf in leaves(w)]
    assert "Ada Lovelace" in kept  # the state written at the reload is among them
    # A secret is never a value, nor in one (a 3-digit code is looked for whole:
    # a random nonce may hold "738").
    assert [v for _, v in SECRETS.values() if any(v == leaf or len(v) > 4 and v in leaf for leaf in kept)] == []
