"""API keys: stored hashed, secret shown once, revocation seen by a running server at once."""

from __future__ import annotations

import stat

import orjson
import pytest
from typer.testing import CliRunner

from api.keys import KeyFileUnreadable, KeyStore, KeyStoreError, split_token
from seatledger.cli import app


def test_the_file_holds_an_argon2_hash_never_the_secret_and_only_its_owner_can_read_it(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    key, token = store.create("ci", "publisher", ["acme", "globex", "acme"])
    text = (tmp_path / "keys.json").read_text()
    secret = split_token(token)[1]
    assert secret not in text and key.secret_hash.startswith("$argon2id$") and key.secret_hash in text
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    assert key.companies == ("acme", "globex")
    assert store.authenticate(token) == key


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: "sl_000000000000_" + t.split("_", 2)[2],
        lambda t: "nonsense",
        lambda t: "",
    ],
)
def test_a_wrong_secret_an_unknown_id_or_a_malformed_token_authenticates_nothing(tmp_path, mangle):
    store = KeyStore(tmp_path / "keys.json")
    _key, token = store.create("ci", "reader")
    assert store.authenticate(token) is not None
    assert store.authenticate(mangle(token)) is None


def test_a_key_revoked_by_another_process_is_refused_at_the_next_request(tmp_path):
    server = KeyStore(tmp_path / "keys.json")
    _key, token = server.create("ci", "reader")
    assert server.authenticate(token) is not None  # now remembered
    KeyStore(tmp_path / "keys.json").revoke("ci")  # `seatledger api-key revoke` elsewhere
    assert server.authenticate(token) is None
    with pytest.raises(KeyStoreError, match="no active key named 'ci'"):
        server.revoke("ci")
    _again, new = server.create("ci", "reader")  # the name is free again
    assert server.authenticate(new) is not None and server.authenticate(token) is None


@pytest.mark.parametrize(("name", "role", "companies", "error"), [
    ("a b", "reader", None, "invalid key name"),
    ("ok", "root", None, "unknown role 'root'"),
    ("ok", "reader", ["bad company"], "invalid company id"),
    ("ci\n", "reader", None, "invalid key name"),  # re.match's $ took a final newline: a name that forged `api-key list`
    ("ok", "reader", ["acme\n"], "invalid company id"),  # and a scope that covered no company at all
])  # fmt: skip
def test_bad_names_roles_and_companies_are_refused(tmp_path, name, role, companies, error):
    with pytest.raises(KeyStoreError, match=error):
        KeyStore(tmp_path / "keys.json").create(name, role, companies)


def test_the_cli_prints_the_secret_once_as_the_last_line_and_never_lists_it(tmp_path):
    runner = CliRunner()
    env = {"SEATLEDGER_DATA_DIR": str(tmp_path)}
    r = runner.invoke(app, ["api-key", "create", "--name", "ci", "--role", "publisher", "--company", "acme"], env=env)
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    assert KeyStore(tmp_path / "api-keys.json").authenticate(token).name == "ci"
    listed = runner.invoke(app, ["api-key", "list"], env=env).stdout
    assert "ci" in listed and "publisher" in listed and "acme" in listed and "active" in listed
    as_json = orjson.loads(runner.invoke(app, ["api-key", "list", "--format", "json"], env=env).stdout)
    assert [k["name"] for k in as_json] == ["ci"] and "secret_hash" not in as_json[0]
    assert token.split("_", 2)[2] not in listed
    r = runner.invoke(app, ["api-key", "revoke", "ci"], env=env)
    assert r.exit_code == 0 and "revoked" in r.stdout
    assert "revoked" in runner.invoke(app, ["api-key", "list"], env=env).stdout
    r = runner.invoke(app, ["api-key", "revoke", "ci"], env=env)
    assert r.exit_code == 2 and "no active key named 'ci'" in r.stderr


@pytest.mark.parametrize("content", [b'{"keys": [', b'{"keys": [{"name": "x"}]}', b"[]", b'{"keys": 7}'])
def test_a_key_file_that_is_not_one_is_refused_by_name_and_never_written_over(tmp_path, content):
    # It raised orjson's or Python's error (a traceback in `api-key list`, a 500 on every request)
    path = tmp_path / "keys.json"
    path.write_bytes(content)
    store = KeyStore(path)
    with pytest.raises(KeyFileUnreadable, match=f"the API key file {path} is not"):
        store.authenticate("sl_abc_def")
    with pytest.raises(KeyFileUnreadable):
        store.create("ci", "reader")
    assert path.read_bytes() == content


@pytest.mark.parametrize("command", [["list"], ["create", "--name", "ci", "--role", "reader"], ["revoke", "ci"]])
def test_the_cli_over_a_broken_key_file_exits_2_naming_it(tmp_path, command):
    (tmp_path / "api-keys.json").write_bytes(b'{"keys": [')
    r = CliRunner().invoke(app, ["api-key", *command], env={"SEATLEDGER_DATA_DIR": str(tmp_path)})
    assert r.exit_code == 2 and r.stdout == "", r.output
    assert r.stderr.startswith(f"error: the API key file {tmp_path / 'api-keys.json'} is not JSON")
    assert (tmp_path / "api-keys.json").read_bytes() == b'{"keys": ['
