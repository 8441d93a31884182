"""A month of synthetic multi-team traffic for the finance report, and its screenshot.

Seeded and deterministic: 30 days (2026-10-22 .. 2026-11-20) of routes from four teams, six
skills, a local GPU tier and a frontier tier, tagged with user, project, cost centre and API key,
some escalated, some labelled, a few with an unknown price; and a policy file with monthly and
daily team budgets (alerts at 80 % and 100 %) and the local tier's reserved GPU.

    python benchmarks/report_fixture.py                       # ledger + policy + HTML in a temp dir
    python benchmarks/report_fixture.py --out /tmp/month --screenshot \
        benchmarks/results/report_month_multi_team.png        # needs chromium + chromedriver

The browser tests (tests/reports/test_report_page.py) load this module by path and check the page
it gives.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.types import CallRecord, Decision, Verdict

START = datetime(2026, 10, 22, tzinfo=UTC)
DAYS = 30
AS_OF = START + timedelta(days=DAYS)  # 2026-11-21T00:00Z: the report is read the next morning
LOCAL, FRONTIER = "local:qwen-ft-v3", "frontier:gpt-4o"
# A local call holds tokens / 1200 GPU-seconds of one GPU at $0.80 an hour (as the policy says).
LOCAL_USD_PER_TOKEN = Decimal("0.80") / 3600 / 1200
FRONTIER_IN, FRONTIER_OUT = Decimal("2.5e-6"), Decimal("1e-5")  # gpt-4o $/token
# team: (share of traffic, skills, users, projects, cost centre)
TEAMS = {
    "claims": (0.40, ("invoice-extraction", "claims-triage", "sql"), 6, ("apollo", "hermes"),
               "cc-104"),
    "research": (0.25, ("literature-review", "sql", "math"), 4, ("gaia",), "cc-220"),
    "support": (0.20, ("ticket-classification", "claims-triage"), 5, ("hermes",), "cc-310"),
    "data-platform-engineering": (0.15, ("sql", "math"), 3, ("atlas",), "cc-415"),
}  # fmt: skip
ESCALATION = {"invoice-extraction": 0.18, "claims-triage": 0.12, "sql": 0.30, "math": 0.40,
              "literature-review": 0.35, "ticket-classification": 0.06}  # fmt: skip
POLICY = """\
# The policy the synthetic month was routed under (benchmarks/report_fixture.py).
tiers:
  - {kind: local, name: "local:qwen-ft-v3", model: qwen-ft-v3, base_url: "http://127.0.0.1:8000/v1",
     usd_per_gpu_hour: "0.80", gpus: 1, throughput_tokens_per_s: 1200}
  - {kind: litellm, name: "frontier:gpt-4o", model: gpt-4o}
budgets:
  on_exhausted: cap
  alerts: [0.8, 1.0]
  teams:
    claims: {month: "30", day: "1.50"}
    research: {month: "28"}
    support: {month: "20"}
    data-platform-engineering: {month: "30", alerts: [0.5, 0.8, 1.0]}
reports:
  fleet:
    "local:qwen-ft-v3": {}      # 1 GPU at $0.80/GPU-hour, from the tier
"""


def records(seed: int = 7, routes_per_day: int = 1500) -> list[CallRecord]:
    """The month's attempts, in time order."""
    rng = random.Random(seed)
    names = list(TEAMS)
    weights = [TEAMS[t][0] for t in names]
    out: list[CallRecord] = []
    for day in range(DAYS):
        busy = 0.55 if (START + timedelta(days=day)).weekday() >= 5 else 1.0
        growth = 0.8 + 0.4 * day / DAYS
        for n in range(int(routes_per_day * busy * growth)):
            ts = START + timedelta(days=day, seconds=rng.randrange(86_400))
            team = rng.choices(names, weights)[0]
            _, skills, users, projects, centre = TEAMS[team]
            skill = rng.choice(skills)
            tags = {
                "user": f"{team[:4]}-user-{rng.randrange(users)}",
                "project": rng.choice(projects),
                "cost_centre": centre,
                "api_key": f"key-{team[:4]}-{rng.randrange(2)}",
            }
            out += _route(rng, f"d{day:02d}-{n:05d}", ts, team, skill, tags)
    out.sort(key=lambda r: (r.ts, r.route_id, r.attempt_index))
    return out


def _route(rng: random.Random, route_id: str, ts: datetime, team: str, skill: str,
           tags: dict[str, str]) -> list[CallRecord]:  # fmt: skip
    prompt, completion = rng.randint(800, 3200), rng.randint(80, 700)
    escalate = rng.random() < ESCALATION[skill]
    frontier_cost = FRONTIER_IN * prompt + FRONTIER_OUT * completion
    unknown = rng.random() < 0.002  # a provider that changed its price list
    base = dict(route_id=route_id, request_id=f"req-{route_id}", team=team, skill=skill,
                prompt_tokens=prompt, completion_tokens=completion, tags=tags,
                data_class="internal")  # fmt: skip
    local = CallRecord(
        **base,  # type: ignore[arg-type]
        attempt_index=0,
        ts=ts,
        tier=LOCAL,
        tier_index=0,
        model="qwen-ft-v3",
        decision=Decision.ESCALATE if escalate else Decision.ACCEPT,
        reason="escalate: verdict failed" if escalate else "accept",
        final=not escalate,
        latency_s=round(rng.uniform(0.2, 1.6), 3),
        cost_usd=(LOCAL_USD_PER_TOKEN * (prompt + completion)).quantize(Decimal("1e-10")),
        counterfactual_usd=None if escalate else frontier_cost,
        verdicts=(Verdict("json_schema", not escalate),),
        passed=not escalate,
    )
    if not escalate:
        return [local]
    frontier = CallRecord(
        **base,  # type: ignore[arg-type]
        attempt_index=1,
        ts=ts + timedelta(seconds=2),
        tier=FRONTIER,
        tier_index=1,
        model="gpt-4o",
        decision=Decision.ACCEPT,
        reason="accept",
        final=True,
        latency_s=round(rng.uniform(1.0, 6.0), 3),
        cost_usd=None if unknown else frontier_cost,
        counterfactual_usd=frontier_cost,
        verdicts=(Verdict("json_schema", True),),
        passed=True,
    )
    return [local, frontier]


def write_month(folder: Path, *, seed: int = 7, routes_per_day: int = 1500) -> tuple[Path, Path]:
    """Write ``ledger.db`` and ``policy.yaml`` into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ledger.db"
    path.unlink(missing_ok=True)
    ledger = SQLiteLedger(path)
    rows = records(seed, routes_per_day)
    ledger.record_many(rows)
    rng = random.Random(seed + 1)
    for row in rows[::37]:
        if row.final:
            ledger.label(row.route_id, correct=rng.random() < 0.93, source="qa-sample")
    ledger.close()
    policy = folder / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    return path, policy


def write_page(folder: Path, *, tz: str = "Europe/Paris") -> Path:
    """The month's HTML report (as ``paxis report --format html`` writes it) in ``folder``."""
    from paxis_router.cli import main

    page = folder / "report.html"
    by = "team,skill,tier,model,day,tag:project,tag:cost_centre"
    main(["report", "--ledger", str(folder / "ledger.db"), "--policy", str(folder / "policy.yaml"),
          "--format", "html", "--tz", tz, "--until", "2026-11-20", "--by", by,
          "-o", str(page)])  # fmt: skip
    return page


def screenshot(page: Path, png: Path, *, width: int = 1400) -> None:
    """A full-page screenshot of ``page`` in headless Chromium."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--window-size={width},1000", "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get(page.as_uri())
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, int(height) + 120)
        png.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(png))
    finally:
        driver.quit()
    from PIL import Image  # matplotlib's dependency, in the bench extra

    with Image.open(png) as image:  # 64 colours: a third of the bytes, the same page to the eye
        small = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    small.save(png, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    parser.add_argument("--screenshot", type=Path, default=None, help="write a PNG here")
    args = parser.parse_args(argv)
    folder = args.out or Path(tempfile.mkdtemp(prefix="paxis-month-"))
    write_month(folder, seed=args.seed)
    page = write_page(folder)
    print(f"ledger, policy and page in {folder}: {page}")
    if args.screenshot is not None:
        screenshot(page, args.screenshot)
        print(f"screenshot: {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
