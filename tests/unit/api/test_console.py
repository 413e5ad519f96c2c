"""The web console in-process (httpx's ASGI transport) over a real DuckDB file written by the sink's
writer: sessions, who sees what, escaping, search and pages, downloads. A month with markup in an
event_id and in the PO number, so escaping is tested on what publishers can send."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from markupsafe import escape
from typer.testing import CliRunner

from api.app import create_app
from api.config import ApiConfig, load_api_settings, load_console_settings
from api.console.sessions import COOKIE
from api.keys import KeyStore
from devtools.local_broker import free_port_pair
from streams.settings import load_settings
from tests.support.given import World
from tests.support.ledger_file import LedgerFile

MONTH = "2026-10"
EVIL_EVENT = '<script>alert("event")</script>'
EVIL_PO = '<img src=x onerror=alert("po")>'
KEYS = {
    "admin": ("admin", None),
    "reader": ("reader", None),
    "globex-reader": ("reader", ["globex"]),
    "publisher": ("publisher", None),
}


def hostile_world() -> World:
    w = World()
    w.company("acme", tz="Europe/Amsterdam", plan="premium")
    w.billing("acme", "2026-01-01", payment_method="card", card_brand="visa", billing_country="NL", po_number=EVIL_PO)
    for u in ("ann", "bob", "cy", "dee", "ed"):
        w.member("acme", u)
    w.event("login", "acme", "2026-10-03", "ann", event_id=EVIL_EVENT)
    for u, day in (("bob", "2026-10-04"), ("cy", "2026-10-05"), ("dee", "2026-10-06")):
        w.do("login", "acme", u, day)
    w.company("globex", plan="advanced")
    for u in ("g1", "g2"):
        w.member("globex", u)
    return w


@dataclass
class Console:
    root: Path
    ledger: LedgerFile
    world: World
    keys: KeyStore
    tokens: dict[str, str]

    def app(self, **console):
        dead = f"127.0.0.1:{free_port_pair()}"  # nothing listens: these tests never reach Kafka
        settings = load_settings(db=self.ledger.path, data_dir=self.root, bootstrap=dead)
        config = ApiConfig(settings, load_api_settings(burst=1000), load_console_settings(page_size=2, **console))
        return create_app(config, keys=self.keys)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Console:
    root = tmp_path_factory.mktemp("console")
    w = hostile_world()
    lf = LedgerFile(root / "ledger.duckdb")
    lf.close_month(w, MONTH)
    store = KeyStore(root / "api-keys.json")
    tokens = {name: store.create(name, role, companies)[1] for name, (role, companies) in KEYS.items()}
    return Console(root, lf, w, store, tokens)


def client_of(app) -> httpx.AsyncClient:
    # https: the session cookie is Secure, and httpx sends it over https only
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://console")


@asynccontextmanager
async def logged_in(console: Console, name: str, **settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(console.app(**settings)) as c:
        r = await c.post("/login", data={"key": console.tokens[name], "next": "/"})
        assert r.status_code == 303, r.text
        yield c


@pytest.fixture
async def admin(console: Console) -> AsyncIterator[httpx.AsyncClient]:
    async with logged_in(console, "admin") as c:
        yield c


@pytest.fixture
async def scoped(console: Console) -> AsyncIterator[httpx.AsyncClient]:
    async with logged_in(console, "globex-reader") as c:
        yield c


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


PAGES = [
    "/",
    f"/months/{MONTH}",
    f"/companies/acme/months/{MONTH}",
    f"/companies/acme/months/{MONTH}/accounts/ann",
    f"/companies/acme/months/{MONTH}/billed-users.csv",
    f"/companies/acme/months/{MONTH}/invoice.json",
    f"/companies/acme/months/{MONTH}/invoice.csv",
    f"/companies/acme/months/{MONTH}/accounts/ann/versions.json",
    f"/months/{MONTH}/invoices.csv",
    f"/months/{MONTH}/invoices.json",
]


# Sessions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_redirects_to_the_login_form_without_a_session(console, path):
    async with client_of(console.app()) as c:
        r = await c.get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=/")


async def test_login_sets_a_signed_http_only_secure_same_site_cookie_that_holds_no_key(console):
    async with client_of(console.app()) as c:
        r = await c.post("/login", data={"key": console.tokens["reader"], "next": f"/months/{MONTH}"})
    assert r.status_code == 303 and r.headers["location"] == f"/months/{MONTH}"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for flag in ("HttpOnly", "Secure", "SameSite=lax", "Path=/"):
        assert flag in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert console.tokens["reader"] not in value and "." in value  # a signed random id, not the key


async def test_the_secure_flag_can_be_turned_off_for_plain_http_tests(console):
    async with client_of(console.app(secure_cookie=False)) as c:
        r = await c.post("/login", data={"key": console.tokens["reader"]})
    assert "Secure" not in r.headers["set-cookie"]


@pytest.mark.parametrize("key", ["publisher", "wrong", "sl_0000_nope"])
async def test_publisher_and_unknown_keys_cannot_log_in(console, key):
    token = console.tokens.get(key, key)
    async with client_of(console.app()) as c:
        r = await c.post("/login", data={"key": token})
        assert r.status_code == 401 and "set-cookie" not in r.headers
        assert "publisher keys cannot log in" in r.text


async def test_login_returns_only_to_a_path_of_this_site(console):
    async with client_of(console.app()) as c:
        for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
            r = await c.post("/login", data={"key": console.tokens["reader"], "next": evil})
            assert r.headers["location"] == "/"


async def test_a_forged_or_altered_cookie_is_no_session(console):
    async with client_of(console.app()) as c:
        r = await c.post("/login", data={"key": console.tokens["reader"]})
        good = r.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        sid, sig = good.rsplit(".", 1)
        for forged in (sid + "x." + sig, "anything.at.all", sid):
            c.cookies.clear()
            r = await c.get(f"/months/{MONTH}", headers={"Cookie": f"{COOKIE}={forged}"})
            assert r.status_code == 303, forged
        r = await c.get(f"/months/{MONTH}", headers={"Cookie": f"{COOKIE}={good}"})
        assert r.status_code == 200  # the same request with the cookie as sent


async def test_a_revoked_key_ends_its_sessions_at_the_next_request(console):
    store = console.keys
    _, token = store.create("short-lived", "reader")
    async with client_of(console.app()) as c:
        assert (await c.post("/login", data={"key": token})).status_code == 303
        assert (await c.get(f"/months/{MONTH}")).status_code == 200
        store.revoke("short-lived")
        assert (await c.get(f"/months/{MONTH}")).status_code == 303


async def test_logout_needs_the_session_csrf_token_and_ends_the_session(admin):
    page = (await admin.get(f"/months/{MONTH}")).text
    assert (await admin.post("/logout", data={"csrf": "guess"})).status_code == 403
    assert (await admin.post("/logout", data={"csrf": csrf_of(page)})).status_code == 303
    assert (await admin.get(f"/months/{MONTH}")).status_code == 303


# Who sees what -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
async def test_admin_opens_every_page(admin, path):
    r = await admin.get(path)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", [p for p in PAGES if "/companies/acme/" in p])
async def test_a_reader_of_another_company_gets_403_on_every_page_of_this_one(scoped, path):
    r = await scoped.get(path)
    assert r.status_code == 403
    assert "does not cover company" in r.text


async def test_a_scoped_reader_sees_only_its_companies_and_no_certificate_of_every_company(scoped):
    page = (await scoped.get(f"/months/{MONTH}")).text
    assert 'data-company="globex"' in page and 'data-company="acme"' not in page
    assert 'id="certificate"' not in page
    listing = orjson.loads((await scoped.get(f"/months/{MONTH}/invoices.json")).content)
    assert [i["company_id"] for i in listing["invoices"]] == ["globex"]
    assert (await scoped.get(f"/companies/globex/months/{MONTH}")).status_code == 200


async def test_only_an_admin_with_the_session_csrf_token_may_apply(console, admin):
    target = f"/companies/acme/months/{MONTH}/accounts/ed/dispute"
    form = {"ticket": "SUP-1", "requested_by": "x"}
    async with logged_in(console, "reader") as reader:
        page = (await reader.get(f"/companies/acme/months/{MONTH}")).text
        for step in (target, target + "/apply"):
            r = await reader.post(step, data=form | {"csrf": csrf_of(page)})
            assert r.status_code == 403 and "only admins apply" in r.text
    for step in (target, target + "/apply"):
        assert (await admin.post(step, data=form | {"csrf": "forged"})).status_code == 403
    csrf = csrf_of((await admin.get(f"/months/{MONTH}")).text)
    bad = await admin.post(target, data={"ticket": "<b>", "csrf": csrf})
    assert bad.status_code == 400 and "Invalid ticket" in bad.text


async def test_without_an_archive_the_account_page_says_so_and_offers_no_apply(admin, console):
    page = (await admin.get(f"/companies/acme/months/{MONTH}/accounts/ed")).text
    assert html.escape(f"no event archive at {console.root / 'archive'}", quote=False) in page
    assert 'id="apply-form"' not in page


# Escaping ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "evil"),
    [
        (f"/companies/acme/months/{MONTH}", EVIL_EVENT),
        (f"/companies/acme/months/{MONTH}/accounts/ann", EVIL_EVENT),
        (f"/companies/acme/months/{MONTH}", EVIL_PO),
        (f"/months/{MONTH}", EVIL_PO),
    ],
)
async def test_markup_from_publishers_shows_as_text(admin, path, evil):
    page = (await admin.get(path)).text
    assert evil not in page
    assert str(escape(evil)) in page  # shown, as text


async def test_pages_allow_no_script(admin):
    r = await admin.get(f"/companies/acme/months/{MONTH}/accounts/ann")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "<script" not in r.text.lower()


async def test_console_routes_stay_out_of_the_openapi_document(admin):
    paths = (await admin.get("/openapi.json")).json()["paths"]
    assert all(p.startswith("/v1/") or p in ("/healthz", "/metrics") for p in paths), sorted(paths)


# Pages ---------------------------------------------------------------------------------------


async def test_month_totals_are_the_ledger_sums(admin, console):
    page = (await admin.get(f"/months/{MONTH}")).text
    billed, charged, total = console.ledger.query(
        "SELECT sum(billable_accounts), sum(charged_accounts), sum(total_usd) FROM invoices WHERE month = ?", [MONTH]
    )[0]
    assert f'id="total-billed">{billed}<' in page
    assert f'id="total-charged">{charged}<' in page
    assert f'id="total-invoiced">USD {total:,.2f}<' in page


async def test_the_seats_chart_has_one_bar_per_company(admin, console):
    page = (await admin.get(f"/months/{MONTH}")).text
    figure = page.split('data-chart="seats"', 1)[1].split("</figure>", 1)[0]
    bars = figure.split('class="mark-rect role-mark seats_marks"', 1)[1].split("</g>", 1)[0]
    companies = console.ledger.query("SELECT count(*) FROM invoices WHERE month = ?", [MONTH])[0][0]
    assert bars.count('role="graphics-symbol"') == companies == 2


async def test_accounts_are_searchable_and_paginated(admin):
    first = (await admin.get(f"/companies/acme/months/{MONTH}")).text
    assert re.findall(r'data-user="([^"]+)"', first) == ["ann", "bob"]
    after = re.search(r'id="next-page" href="([^"]+)"', first)
    assert after
    second = (await admin.get(html.unescape(after.group(1)))).text
    assert re.findall(r'data-user="([^"]+)"', second) == ["cy", "dee"]
    found = (await admin.get(f"/companies/acme/months/{MONTH}", params={"q": "D", "show": "billed"})).text
    assert re.findall(r'data-user="([^"]+)"', found) == ["dee"]
    none = (await admin.get(f"/companies/acme/months/{MONTH}", params={"q": "%"})).text
    assert re.findall(r'data-user="([^"]+)"', none) == []  # a wildcard is a character here


async def test_billed_users_csv_is_the_bytes_of_seatledger_export(admin, console, tmp_path):
    from seatledger.cli import app as cli

    events = tmp_path / "events.ndjson"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in console.world.raw))
    exported = CliRunner().invoke(cli, ["export", "--events", str(events), "--company", "acme", "--month", MONTH])
    assert exported.exit_code == 0, exported.output
    r = await admin.get(f"/companies/acme/months/{MONTH}/billed-users.csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.text == exported.stdout
    assert r.text.count("\n") == 1 + 4  # ann, bob, cy, dee


async def test_an_unknown_account_or_month_is_a_404_page(admin):
    assert (await admin.get(f"/companies/acme/months/{MONTH}/accounts/nobody")).status_code == 404
    r = await admin.get("/companies/acme/months/2030-01")
    assert r.status_code == 404 and "no invoice and no estimate" in r.text
