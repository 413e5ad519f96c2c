"""The web console in a real browser: Debian's chromium, headless, driven by Playwright, against the
console `seatledger demo` leaves running on a month it built with the real broker, worker, sink
and archive.

The month carries a probe company with markup in an event_id, its PO number and its name. After
the demo, the archive and the sink run again (no worker) and a late login reaches only the archive,
so the dispute view has a difference to show and an admin can apply it.

Pages are opened with JavaScript off (every page must work without it), except the XSS probe,
which runs with it on and fails on any dialog. Screenshots of each page go to the directory the
test prints (SEATLEDGER_ARTIFACTS, else artifacts/console/); with SEATLEDGER_DOC_IMAGES=1 they are
also copied to docs/img/ for docs/console.md.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from api.console.reads import last_months
from api.keys import KeyStore
from devtools.demo import DemoOptions, DemoResult, child_env, demo_settings, run_demo, wait_for_archive
from ledger.connection import read_connection
from streams.settings import Settings
from tests.support.given import World
from tests.support.services import ROOT, Service
from tests.support.worker_harness import publish

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("SEATLEDGER_CHROMIUM", "/usr/bin/chromium"))
MONTH = "2026-02"
PROBE = "xss-co"
EVIL_EVENT = '<script>alert("event_id")</script>'
EVIL_LATE = '<img src=x onerror=alert("late")>'
EVIL_PO = '<img src=x onerror=alert("po")>'
EVIL_NAME = '<script>alert("name")</script>'
ARTIFACTS = Path(os.environ.get("SEATLEDGER_ARTIFACTS", ROOT / "artifacts" / "console"))
DOC_IMAGES = ROOT / "docs" / "img"


def probe_events() -> list[dict]:
    """A premium (activity-model) company: u-ann active in the month through an event whose id is
    markup, u-late never active (not billed) until the late login."""
    w = World()
    w.company(PROBE, tz="Europe/Amsterdam", at="2025-06-01T08:00:00Z", plan="premium", name=EVIL_NAME)
    w.billing(PROBE, "2025-06-02", payment_method="card", card_brand="visa", billing_country="NL", po_number=EVIL_PO)
    for u in ("u-ann", "u-late"):
        w.member(PROBE, u, at="2025-06-03T08:00:00Z")
    w.event("login", PROBE, f"{MONTH}-03", "u-ann", event_id=EVIL_EVENT)
    for e in w.raw:
        if e["event_id"] != EVIL_EVENT:
            e["event_id"] = f"probe-{e['event_id']}"  # never an id of the workload's
    return w.raw


def late_login() -> dict:
    return {"event_id": EVIL_LATE, "type": "login", "occurred_at": f"{MONTH}-20T09:00:00+01:00",
            "company_id": PROBE, "user_id": "u-late"}  # fmt: skip


@dataclass
class Site:
    demo: DemoResult
    settings: Settings  # the run's topics
    env: dict[str, str]
    admin: str
    reader: str  # a reader of the probe company only

    @property
    def base(self) -> str:
        return self.demo.console.url.split("/months/")[0] if self.demo.console else ""

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with read_connection(self.demo.db) as con:
            return con.execute(sql, params or []).fetchall()


@pytest.fixture(scope="module")
def site(kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("console-browser")
    settings = kafka_settings.model_copy(update={"data_dir": tmp / "var", "db": tmp / "demo.duckdb"})
    opts = DemoOptions(companies=5, accounts=300, month=MONTH, seed=11, pack=100, timeout=240, quiet=True,
                       console=True, extra_events=probe_events())  # fmt: skip
    demo = run_demo(settings, opts)
    assert demo.console is not None
    run_settings = demo_settings(settings, demo.run_dir.name, demo.run_dir, demo.db)
    env = child_env(run_settings, demo.run_dir)
    services = [Service([name], env, demo.run_dir / f"{name}-after.log").start() for name in ("archive", "sink")]
    try:
        asyncio.run(publish(run_settings, [(PROBE.encode(), orjson.dumps(late_login()), None)]))
        assert wait_for_archive(run_settings, demo.run_dir / "archive", 120), "the archive did not catch up"
        _, reader = KeyStore(demo.run_dir / "api-keys.json").create("probe-reader", "reader", [PROBE])
        yield Site(demo, run_settings, env, demo.console.key, reader)
    finally:
        for s in services:
            s.stop()
        os.kill(demo.console.pid, signal.SIGTERM)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"no chromium at {CHROMIUM}: install Debian's (`apt-get install -y chromium`; scripts/setup.sh does)"
        )
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {ARTIFACTS}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


def login(browser, site: Site, key: str, javascript: bool = False):
    ctx = browser.new_context(
        java_script_enabled=javascript, viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    page = ctx.new_page()
    page.goto(site.base + "/")
    assert "/login" in page.url
    if not (ARTIFACTS / "login.png").exists():
        shot(page, "login")
    page.fill("#key", key)
    page.click("form.login button[type=submit]")
    assert "/login" not in page.url, page.content()
    return ctx, page


def shot(page, name: str) -> None:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("SEATLEDGER_DOC_IMAGES") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOC_IMAGES / f"console-{name}.png")


def text(page, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def marks(page, chart: str, kind: str) -> int:
    """The marks of one kind (rect, symbol) in a chart's SVG."""
    return page.locator(f'figure[data-chart="{chart}"] g.mark-{kind} path[role="graphics-symbol"]').count()


def usd(value: Decimal) -> str:
    return f"USD {value:,.2f}"


def biggest_company(site: Site) -> str:
    return site.query(
        "SELECT company_id FROM invoices WHERE month = ? ORDER BY billable_accounts DESC, company_id LIMIT 1", [MONTH]
    )[0][0]


# ------------------------------------------------------------------------------------------------


def test_the_demo_ends_with_the_console_url_and_a_one_time_key(site):
    from devtools.demo import console_lines

    assert site.demo.console is not None
    last = console_lines(site.demo.console).splitlines()[-2:]
    assert last == [f"  {site.demo.console.url}", f"  {site.admin}"]
    assert site.demo.console.url.endswith(f"/months/{MONTH}")


def test_the_month_overview_shows_duckdb_numbers_and_one_bar_per_company(browser, site):
    ctx, page = login(browser, site, site.admin)
    page.goto(site.demo.console.url)
    billed, charged, total, n = site.query(
        "SELECT sum(billable_accounts), sum(charged_accounts), sum(total_usd), count(*) FROM invoices WHERE month = ?",
        [MONTH],
    )[0]
    assert text(page, "#total-billed") == f"{billed:,}"
    assert text(page, "#total-charged") == f"{charged:,}"
    assert text(page, "#total-invoiced") == usd(total)
    assert text(page, "#checksums-match") == "yes"
    assert page.locator("#invoice-list tbody tr").count() == n
    assert marks(page, "seats", "rect") == min(n, 10) + (1 if n > 10 else 0)
    rules = site.query(
        "SELECT count(*) FROM (SELECT DISTINCT rule, reason FROM account_decisions WHERE month = ?)", [MONTH]
    )
    assert marks(page, "rules", "rect") == rules[0][0]
    series = site.query(
        "SELECT count(*) FROM (SELECT DISTINCT month, plan, tier FROM invoice_lines WHERE list_contains(?, month))",
        [last_months(MONTH)],
    )[0][0]
    assert marks(page, "revenue", "symbol") == series
    shot(page, "month")
    ctx.close()


def test_the_company_page_shows_the_invoice_a_point_per_day_and_finds_a_user(browser, site):
    company = biggest_company(site)
    ctx, page = login(browser, site, site.admin)
    page.goto(f"{site.base}/companies/{company}/months/{MONTH}")
    billed, subtotal, total = site.query(
        "SELECT billable_accounts, subtotal_usd, total_usd FROM invoices WHERE company_id = ? AND month = ?",
        [company, MONTH],
    )[0]
    assert text(page, "#invoice-billed") == f"{billed:,}"
    assert text(page, "#invoice-subtotal") == usd(subtotal)
    assert text(page, "#invoice-total") == usd(total)
    days = site.query("SELECT count(*) FROM mau_daily WHERE company_id = ? AND month = ?", [company, MONTH])[0][0]
    assert days == 28 and marks(page, "mau", "symbol") == days
    assert page.locator("#account-list tbody tr").count() == 50  # the first page
    shot(page, "company")

    users = [
        u
        for (u,) in site.query(
            "SELECT user_id FROM account_decisions WHERE company_id = ? AND month = ? ORDER BY user_id",
            [company, MONTH],
        )
    ]
    target = users[len(users) // 2]
    page.fill("#q", target[-6:])
    page.click("form.search button[type=submit]")
    found = page.locator("#account-list tbody tr[data-user]").evaluate_all("rows => rows.map(r => r.dataset.user)")
    assert target in found and all(target[-6:].lower() in u.lower() for u in found)
    shot(page, "search")
    ctx.close()


def test_the_billed_users_download_is_the_bytes_of_seatledger_export(browser, site, tmp_path):
    company = biggest_company(site)
    ctx, page = login(browser, site, site.admin)
    page.goto(f"{site.base}/companies/{company}/months/{MONTH}")
    with page.expect_download() as info:
        page.click("#billed-users-csv")
    got = Path(info.value.path()).read_bytes()
    exported = subprocess.run(
        [sys.executable, "-m", "seatledger.cli", "export", "--events", str(site.demo.run_dir / "archive"),
         "--company", company, "--month", MONTH],
        env=site.env, cwd=ROOT, capture_output=True, timeout=300,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr.decode()
    assert got == exported.stdout
    assert (
        got.count(b"\n")
        == 1
        + site.query(
            "SELECT count(*) FROM account_decisions WHERE company_id = ? AND month = ? AND billable", [company, MONTH]
        )[0][0]
    )
    ctx.close()


def test_markup_in_an_event_id_a_po_number_and_a_company_name_shows_as_text(browser, site):
    ctx, page = login(browser, site, site.admin, javascript=True)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{site.base}/companies/{PROBE}/months/{MONTH}")
    assert text(page, "#invoice-po") == EVIL_PO
    assert page.locator("#account-list .eid", has_text=EVIL_EVENT).count() == 1
    page.goto(f"{site.base}/companies/{PROBE}/months/{MONTH}/accounts/u-ann")
    assert page.locator("#event-list .eid", has_text=EVIL_EVENT).count() == 1
    page.goto(f"{site.base}/companies/{PROBE}/months/{MONTH}/accounts/u-late")
    assert page.locator("#dispute-causes .eid", has_text=EVIL_LATE).count() == 1
    page.goto(site.demo.console.url)
    assert page.locator(f'#invoice-list tr[data-company="{PROBE}"] .po').inner_text() == EVIL_PO
    for html in (page.content(),):
        assert EVIL_NAME not in html and EVIL_PO not in html
    assert dialogs == []
    ctx.close()


def test_a_reader_sees_the_dispute_but_cannot_apply_it(browser, site):
    ctx, page = login(browser, site, site.reader)
    page.goto(f"{site.base}/companies/{PROBE}/months/{MONTH}/accounts/u-late")
    assert "Differs" in text(page, "#dispute-status")
    assert page.locator("#apply-form").count() == 0 and page.locator("#admins-only").count() == 1
    shot(page, "account-reader")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.content()).group(1)
    r = ctx.request.post(f"{site.base}/companies/{PROBE}/months/{MONTH}/accounts/u-late/dispute/apply",
                         form={"ticket": "SUP-7", "csrf": csrf})  # fmt: skip
    assert r.status == 403
    other = page.goto(f"{site.base}/companies/{biggest_company(site)}/months/{MONTH}")
    assert other is not None and other.status == 403
    ctx.close()
    assert site.query("SELECT count(*) FROM disputes")[0][0] == 0


def test_an_admin_applies_the_correction_after_confirming_and_sees_the_new_version(browser, site):
    ctx, page = login(browser, site, site.admin)
    account = f"{site.base}/companies/{PROBE}/months/{MONTH}/accounts/u-late"
    page.goto(account)
    assert text(page, "#current-billable") == "no"
    assert "Differs" in text(page, "#dispute-status")
    shot(page, "account")
    page.fill("#ticket", "SUP-7")
    page.click("#apply-form button[type=submit]")
    assert page.locator("#confirm-form").count() == 1
    shot(page, "confirm")
    assert site.query("SELECT count(*) FROM disputes")[0][0] == 0  # nothing applied before confirming
    page.click("#confirm-form button[type=submit]", timeout=180_000)
    page.wait_for_url(re.compile(r".*applied=SUP-7$"), timeout=180_000)
    assert text(page, "#applied").startswith("Ticket SUP-7 applied")
    assert text(page, "#current-billable") == "yes"
    assert page.locator('#version-list tr[data-version="2"]').inner_text().count("ticket SUP-7") == 1
    stored = site.query(
        "SELECT version, billable FROM snapshot_versions WHERE company_id = ? AND user_id = 'u-late' AND month = ? ORDER BY version",
        [PROBE, MONTH],
    )
    assert stored == [(1, False), (2, True)]
    assert "Same" in text(page, "#dispute-status")  # the recomputation now equals the billed version
    shot(page, "account-applied")
    ctx.close()
