"""`seatledger serve` as a real process answering hostile publish requests: bodies that cannot be
read as a whole get a problem that says why in a client's words (JSON's types, not Python's; the
byte that is not UTF-8), events that break the contract are listed one by one, and nothing a
request holds stops the server from answering the next one. No broker listens: no event here is
valid, so nothing is sent (a valid one would get 503)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from devtools.local_broker import free_port_pair
from streams.settings import load_settings
from tests.support.api_server import ApiServer, api_env, make_keys

GOOD = {"event_id": "e1", "type": "login", "occurred_at": "2026-10-02T08:00:00Z", "company_id": "acme", "user_id": "u1"}
NDJSON = {"Content-Type": "application/x-ndjson"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-hostile")
    tokens = make_keys(root, {"pub": ("publisher", ["acme"])})
    settings = load_settings(bootstrap=f"127.0.0.1:{free_port_pair()}", data_dir=root)
    srv = ApiServer(api_env(settings, root / "ledger.duckdb", root), root / "api.log").start()
    try:
        yield srv, {"Authorization": f"Bearer {tokens['pub']}"}
    finally:
        assert srv.stop() == 0, srv.tail()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (orjson.dumps(GOOD), "a JSON body must be an array of events, got an object; send one event as [event] or as NDJSON"),
        (b"null", "a JSON body must be an array of events, got null; send one event as [event] or as NDJSON"),
        (b'{"a": 1}'.decode().encode("utf-16"), "the body cannot be read: not valid JSON: the text is UTF-16"),
        (b'[{"event_id": "caf\xe9"}]', "the body cannot be read: not valid JSON: not UTF-8: byte(s) E9 at byte offset 18"),
        (b"\xef\xbb\xbf[]", "the body cannot be read: not valid JSON: UTF-8 byte order mark (BOM) is not supported"),
        (b"", "the body cannot be read: not valid JSON: Input is a zero-length, empty document"),
    ],
)  # fmt: skip
def test_a_json_body_that_cannot_be_read_is_400_saying_why_in_json_terms(server, body, detail):
    srv, auth = server
    r = httpx.post(srv.url + "/v1/events", content=body, headers=auth | JSON, timeout=30)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"].startswith(detail), r.json()["detail"]


def test_broken_ndjson_lines_are_each_rejected_with_their_reason_and_the_server_goes_on(server):
    srv, auth = server
    lines = [
        b"\xef\xbb\xbf" + orjson.dumps(GOOD | {"event_id": "x\n"}),  # a BOM, and a control character
        orjson.dumps(GOOD | {"schema_version": True}) + b"\r",  # CRLF
        b'{"event_id": "caf\xe9", "type": "login"}',
        b"[" + orjson.dumps(GOOD) + b"]",
        orjson.dumps(GOOD | {"extra": "x" * 70_000}),
        b'{"a":' * 40 + b"1" + b"}" * 40,
        orjson.dumps(GOOD | {"company_id": "globex"}),
        orjson.dumps(GOOD)[:25],  # a last line cut short
    ]
    r = httpx.post(srv.url + "/v1/events", content=b"\n".join(lines), headers=auth | NDJSON, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (0, len(lines))
    reasons = {x["index"]: x["reason"] for x in body["rejections"]}
    assert reasons[0].startswith("not valid JSON: UTF-8 byte order mark (BOM) is not supported")
    assert reasons[1] == "field 'schema_version': True is not allowed; input should be 1"
    assert reasons[2].startswith("not valid JSON: not UTF-8: byte(s) E9 at byte offset 17")
    assert reasons[3] == "one event object per NDJSON line, not an array"
    assert reasons[4].startswith("the event is 70,")
    assert reasons[5].startswith("the event nests more than 32 levels")
    assert reasons[6] == "company 'globex' is outside this API key's scope"
    assert reasons[7].startswith("not valid JSON: unexpected end of data")
    assert httpx.get(srv.url + "/healthz", timeout=30).status_code in (200, 503)  # answers (no broker: 503)


def test_a_key_file_broken_by_hand_gets_503_until_restored_and_the_server_stays_up(tmp_path):
    # It answered 500 "JSONDecodeError" to every request (and `api-key list` a traceback)
    tokens = make_keys(tmp_path, {"reader": ("reader", None)})
    settings = load_settings(bootstrap=f"127.0.0.1:{free_port_pair()}", data_dir=tmp_path)
    srv = ApiServer(api_env(settings, tmp_path / "ledger.duckdb", tmp_path), tmp_path / "api.log").start()
    keys = tmp_path / "api-keys.json"
    good = keys.read_bytes()
    auth = {"Authorization": f"Bearer {tokens['reader']}"}
    url = srv.url + "/v1/months/2026-10/invoices"
    try:
        assert httpx.get(url, headers=auth, timeout=30).status_code != 401  # the key works (no ledger: 503)
        keys.write_bytes(good[: len(good) // 2])
        r = httpx.get(url, headers=auth, timeout=30)
        assert (r.status_code, r.json()["type"]) == (503, "urn:seatledger:problem:keys-unavailable"), r.text
        assert r.headers["retry-after"] == "5"
        page = httpx.get(srv.url + "/months/2026-10", cookies={}, timeout=30, follow_redirects=False)
        assert page.status_code == 303  # no session: the login form, which works again once restored
        login = httpx.post(srv.url + "/login", data={"key": tokens["reader"]}, timeout=30)
        assert login.status_code == 503 and "cannot read its API keys" in login.text
        keys.write_bytes(good)
        assert httpx.get(url, headers=auth, timeout=30).status_code != 401
    finally:
        assert srv.stop() == 0, srv.tail()
    assert "event=api_keys_unreadable" in srv.tail()
