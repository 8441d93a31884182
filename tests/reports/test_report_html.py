"""The HTML report opened in a real headless Chromium: charts present, no console error."""

from __future__ import annotations

import importlib.util
import itertools
import re
import shutil
import struct
import sys
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.reports import cost_report as report
from paxis_router.types import CallRecord, Decision, Verdict

DAY1 = datetime(2026, 11, 1, 9, tzinfo=UTC)
CHARTS = ("spend-by-team", "spend-by-tier", "savings", "escalation-by-skill", "cost-quality")


def sample_ledger(path: Path) -> SQLiteLedger:
    """Three days of routes for two skills, some escalated, some labelled."""
    ledger = SQLiteLedger(path)
    records: list[CallRecord] = []
    for n in range(18):
        ts = DAY1 + timedelta(days=n % 3, minutes=n)
        skill = "invoice" if n % 2 else "sql"
        escalate = n % 3 == 0
        base: dict[str, Any] = {  # Any: CallRecord fields of mixed types
            "route_id": f"r{n}",
            "request_id": f"q{n}",
            "team": "claims",
            "skill": skill,
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "verdicts": (Verdict("schema", not escalate),),
        }
        records.append(
            CallRecord(
                **base,
                attempt_index=0,
                ts=ts,
                tier="local:qwen",
                tier_index=0,
                model="qwen",
                decision=Decision.ESCALATE if escalate else Decision.ACCEPT,
                reason="escalate: schema failed" if escalate else "accept",
                final=not escalate,
                latency_s=0.4,
                cost_usd=Decimal("0.0002"),
                counterfactual_usd=None if escalate else Decimal("0.004"),
                passed=not escalate,
            )
        )
        if escalate:
            records.append(
                CallRecord(
                    **{**base, "verdicts": (Verdict("schema", True),)},
                    attempt_index=1,
                    ts=ts + timedelta(seconds=1),
                    tier="frontier:gpt-4o",
                    tier_index=1,
                    model="gpt-4o",
                    decision=Decision.ACCEPT,
                    reason="accept",
                    final=True,
                    latency_s=1.5,
                    cost_usd=Decimal("0.004"),
                    counterfactual_usd=Decimal("0.004"),
                    passed=True,
                )
            )
    ledger.record_many(records)
    for n in range(0, 18, 2):
        ledger.label(f"r{n}", correct=n % 4 == 0, source="audit")
    for n in range(1, 18, 2):
        ledger.label(f"r{n}", correct=True, source="audit")
    return ledger


@pytest.fixture
def html_file(tmp_path: Path) -> Path:
    ledger = sample_ledger(tmp_path / "l.db")
    built = report.build(ledger, now=DAY1 + timedelta(days=3))
    path = tmp_path / "report.html"
    path.write_text(built.to_html(), encoding="utf-8")
    return path


def test_the_html_is_self_contained(html_file: Path) -> None:
    text = html_file.read_text(encoding="utf-8")
    assert not re.search(r"(?i)(https?:|//[a-z0-9.-]+\.[a-z]{2,}/|<script|src=)", text)
    for chart in CHARTS:
        assert f'id="chart-{chart}"' in text
    assert "no data" not in text  # every chart has something to draw on this ledger


def test_an_empty_report_draws_placeholders(tmp_path: Path) -> None:
    html = report.build(SQLiteLedger(tmp_path / "e.db")).to_html()
    assert html.count(">no data</text>") == len(CHARTS)


@pytest.fixture
def browser() -> Iterator[Any]:  # Any: selenium's WebDriver (untyped vendor object)
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install both)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1800",
                 "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=driver_path)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def png_size_and_colours(data: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values in the decoded pixel stream."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


@pytest.mark.slow
def test_charts_render_in_headless_chromium(html_file: Path, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(html_file.as_uri())
    assert browser.title == "paxis cost report"
    for chart in CHARTS:
        figure = browser.find_element(By.ID, f"chart-{chart}")
        svg = figure.find_element(By.TAG_NAME, "svg")
        assert svg.size["width"] > 300 and svg.size["height"] > 150
        marks = svg.find_elements(By.CSS_SELECTOR, "rect.bar, circle.point")
        assert marks, f"chart {chart} drew no bars or points"
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart-spend-by-tier rect.bar")
    assert len(bars) == 4  # 3 days of local:qwen; the frontier tier only on the day n % 3 == 0
    points = browser.find_elements(By.CSS_SELECTOR, "#chart-cost-quality circle.point")
    assert len(points) == 2  # two labelled skills
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    width, height, colours = png_size_and_colours(shot.read_bytes())
    assert (width, height) == (1400, 1800) or width > 800
    assert colours > 20  # not a blank page
    assert shot.stat().st_size > 20_000


# --- the finance page on a month of multi-team traffic (benchmarks/report_fixture.py) ------------

ROOT = Path(__file__).resolve().parents[2]
MONTH_CHARTS = (*CHARTS, "budget-burn")
PARIS_UNTIL = datetime(2026, 11, 20, 23, tzinfo=UTC)  # --until 2026-11-20 --tz Europe/Paris


def load_fixture() -> ModuleType:
    name = "report_fixture"
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[CallRecord]]:
    """The month's page (as `paxis report --format html --policy ... --tz Europe/Paris` writes
    it) and the records it was built from."""
    fixture = load_fixture()
    folder = tmp_path_factory.mktemp("month")
    fixture.write_month(folder)
    page: Path = fixture.write_page(folder)
    records: list[CallRecord] = fixture.records()
    return page, records


def test_the_month_page_is_self_contained_tables_not_markdown(
    month: tuple[Path, list[CallRecord]],
) -> None:
    html = month[0].read_text(encoding="utf-8")
    assert not re.search(r"(?i)(https?:|<script|src=)", html)
    assert "<pre" not in html and "| ---" not in html and "|---" not in html
    tables = ("budgets", "fleet", "fleet-teams", "crosstab-team-skill", "crosstab-team-month",
              "by-team", "by-tag-project", "by-tag-cost_centre")  # fmt: skip
    for table_id in tables:
        assert f'<table id="{table_id}">' in html


@pytest.mark.slow
def test_the_month_page_as_a_person_sees_it(
    month: tuple[Path, list[CallRecord]], browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    page, records = month
    browser.get(page.as_uri())
    # the headline figures, against sums computed here from the records themselves
    shown = [r for r in records if r.ts < PARIS_UNTIL]
    spend = sum((r.cost_usd for r in shown if r.cost_usd is not None), Decimal(0))
    frontier_only = sum(
        (r.counterfactual_usd for r in shown if r.final and r.counterfactual_usd is not None),
        Decimal(0),
    )
    routes = sum(1 for r in shown if r.final)

    def headline(key: str) -> str:
        return str(browser.find_element(By.CSS_SELECTOR, f"#headline-{key} .value").text)

    assert spend >= 100  # so the page shows cents
    assert headline("spend") == f"${spend.quantize(Decimal('0.01')):,}"
    assert headline("frontier-only") == f"${frontier_only.quantize(Decimal('0.01')):,}"
    saved = frontier_only - spend
    share = float(saved / frontier_only)
    assert headline("saved") == f"${saved.quantize(Decimal('0.01')):,} ({share:.1%})"
    assert headline("routes") == f"{routes:,}"
    # every chart drew marks, full width, with round $ ticks and x labels that never overlap
    body_width = browser.execute_script("return document.body.clientWidth")
    for chart in MONTH_CHARTS:
        figure = browser.find_element(By.ID, f"chart-{chart}")
        svg = figure.find_element(By.TAG_NAME, "svg")
        assert svg.size["width"] > 0.9 * body_width - 100, chart
        marks = svg.find_elements(By.CSS_SELECTOR, "rect.bar, circle.point, polyline")
        assert marks and "no data" not in svg.text, chart
        boxes = browser.execute_script(
            "return [...arguments[0].querySelectorAll('text.x-label')].map(t => {"
            "const r = t.getBoundingClientRect(); return [r.left, r.right]; })",
            svg,
        )
        for (_, right), (left, _) in itertools.pairwise(sorted(boxes)):
            assert right <= left, f"{chart}: x labels overlap"
    days = browser.find_elements(By.CSS_SELECTOR, "#chart-spend-by-tier text.x-label")
    assert 5 <= len(days) <= 20  # 30 days, a label every few days
    for chart in ("spend-by-team", "spend-by-tier", "savings"):
        ticks = [t.text for t in browser.find_elements(By.CSS_SELECTOR, f"#chart-{chart} .y-tick")]
        values = [Decimal(t.lstrip("$").replace(",", "")) for t in ticks]
        steps = {b - a for a, b in itertools.pairwise(values)}
        assert ticks[0] == "$0" and len(steps) == 1, ticks
        (step,) = steps
        assert step.normalize().as_tuple().digits in ((1,), (2,), (2, 5), (5,)), ticks
    items = browser.find_elements(By.CSS_SELECTOR, "#chart-spend-by-team .legend li")
    legend = [li.text for li in items]
    assert sorted(legend) == ["claims", "data-platform-engineering", "research", "support"]
    # budgets: alerts at the thresholds, a forecast; the amortised view; negative savings
    alerts = browser.find_element(By.ID, "alerts").text
    assert "Team research reached 80% of its month budget of $28.00" in alerts
    assert "Team research is forecast to spend" in alerts
    budget_rows = browser.find_elements(By.CSS_SELECTOR, "#budgets tbody tr")
    assert len(budget_rows) == 5  # claims month + day, and the three other teams
    fleet = browser.find_element(By.ID, "fleet").text
    assert "local:qwen-ft-v3" in fleet and "%" in fleet
    negative = browser.find_elements(By.CSS_SELECTOR, "#fleet-teams .negative")
    assert negative and all(n.text.startswith("costs $") for n in negative)
    assert browser.find_element(By.ID, "report-meta").text.count("Europe/Paris") == 1
    # nothing wider than the window, at a desktop and at a laptop width
    for width in (1400, 1000):
        browser.set_window_size(width, 1800)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page scrolls sideways at {width}px"
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    shot = tmp_path / "month.png"
    assert browser.save_screenshot(str(shot))
    assert png_size_and_colours(shot.read_bytes())[2] > 20
