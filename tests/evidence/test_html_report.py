"""report.html and trend.html in a real headless chromium: no console errors, charts drawn."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from drills.evidence.analysis import analyse
from drills.evidence.html_report import render
from drills.evidence.json_report import load_report
from tests.conftest import Runs
from tests.evidence.browser import Chromium

pytestmark = pytest.mark.twin

PNG = b"\x89PNG\r\n\x1a\n"


def _check_page(browser: Chromium, page: Path, shots: Path, name: str) -> Path:
    console = browser.open(page)
    assert console.errors == [], console.errors
    assert browser.evaluate("document.querySelectorAll('link[href], script[src], "
                            "img[src^=http]').length") == 0, "the page loads nothing"
    shot = browser.screenshot(shots / f"{name}.png")
    assert shot.read_bytes()[:8] == PNG
    assert shot.stat().st_size > 50_000
    return shot


def test_report_html_renders_with_timelines(runs: Runs, chromium_path: str,
                                            tmp_path: Path) -> None:
    """The outage run's report renders with no console error: a timeline per drill showing
    failed probes and the injected/detected/recovered marks; a screenshot and a PDF print."""
    report_dir = runs.dirs["outage"]
    data = runs.report("outage")
    with Chromium(tmp_path / "profile") as browser:
        shot = _check_page(browser, report_dir / "report.html", tmp_path, "report")
        assert browser.evaluate("document.querySelectorAll('svg.timeline').length") == len(
            data["drills"])
        assert browser.evaluate("document.querySelectorAll('svg.timeline line.bad').length") \
            == sum(not p["ok"] for d in data["drills"] for p in d["probes"])
        labels = browser.evaluate("[...document.querySelectorAll('svg.timeline text.marklbl')]"
                                  ".map(t => t.textContent).join('|')")
        for mark in ("fault injected", "first failure seen", "service recovered",
                     "capacity restored"):
            assert mark in labels
        width = browser.evaluate("document.querySelector('svg.timeline')"
                                 ".getBoundingClientRect().width")
        assert width > 800, "the timeline is drawn at full width"
        headline = browser.evaluate("document.querySelector('.verdict .big').textContent")
        assert headline == "PASS · REHEARSAL"
        browser.clip(tmp_path / "drill-1.png", "section.drill", 0)
        pdf = browser.pdf(tmp_path / "report.pdf").read_bytes()
        assert pdf[:5] == b"%PDF-"
        pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))
        assert pages >= len(data["drills"]) + 2, "each drill starts a page after the summary"
        browser.media("print")
        assert browser.evaluate("getComputedStyle(document.querySelector('section.drill'))"
                                ".breakBefore") == "page"
        assert browser.evaluate("getComputedStyle(document.querySelector('nav.toc'))"
                                ".display") == "none"
        browser.screenshot(tmp_path / "report-print.png")
    print(f"report screenshot: {shot}")


def test_breach_report_shows_fail_and_findings(runs: Runs, chromium_path: str,
                                               tmp_path: Path) -> None:
    """The breach run's report says FAIL first and lists both open findings."""
    with Chromium(tmp_path / "profile") as browser:
        _check_page(browser, runs.dirs["breach"] / "report.html", tmp_path, "breach")
        headline = browser.evaluate("document.querySelector('.verdict .big').textContent")
        assert headline == "FAIL · REHEARSAL"
        text = browser.evaluate("document.querySelector('#findings').innerText")
        for f in runs.report("breach")["findings"]:
            assert f["finding_id"] in text


def test_trend_html_charts_every_figure(runs: Runs, chromium_path: str,
                                        tmp_path: Path) -> None:
    """trend.html renders one RTO chart per drill, a point per run and figure (none hidden),
    and a dashed line per objective the figures were measured against."""
    from drills.evidence import index as index_mod
    from drills.evidence.trend import collect

    series = [s for s in collect(index_mod.read(runs.root)) if s.seconds]
    drills = {(s.drill_key, s.target_kind) for s in series}
    points = sum(f.value is not None for s in series for _, f in s.points)
    objectives = sum(len({f.objective for s in series if (s.drill_key, s.target_kind) == d
                          for _, f in s.points}) for d in drills)
    assert any(len(s.points) > 1 for s in series), "the history spans several runs"
    with Chromium(tmp_path / "profile") as browser:
        shot = _check_page(browser, runs.root / "trend.html", tmp_path, "trend")
        assert browser.evaluate("document.querySelectorAll('svg.trend').length") >= len(drills)
        rto = "[...document.querySelectorAll('svg.trend')].filter(s => " \
              "s.getAttribute('aria-label').endsWith(': RTO'))"
        assert browser.evaluate(f"{rto}.length") == len(drills)
        assert browser.evaluate(f"{rto}.map(s => s.querySelectorAll('circle').length)"
                                ".reduce((a, b) => a + b, 0)") == points
        assert browser.evaluate(f"{rto}.map(s => s.querySelectorAll('line.objective')"
                                ".length).reduce((a, b) => a + b, 0)") == objectives
    print(f"trend screenshot: {shot}")


def test_annual_report_has_review_and_sign_off(runs: Runs, chromium_path: str,
                                               tmp_path: Path) -> None:
    """An annual report adds 'Update RTO/RPO based on actual times' with stated vs measured
    figures, and the remediation plan with owner, due date and sign-off from the team file."""
    report_dir = tmp_path / "reports" / runs.dirs["breach"].name
    shutil.copytree(runs.dirs["breach"], report_dir)
    run = load_report(report_dir)
    run.exercise = "annual"
    fid = run.findings[0].finding_id
    team = tmp_path / "remediation.toml"
    team.write_text(f'[findings.{fid}]\nowner = "Platform team"\ndue = 2027-01-31\n'
                    f'action = "Keep a warm spare instance"\n\n[sign_off."{run.run_id}"]\n'
                    'name = "J. Smith"\nrole = "Head of Operations"\ndate = 2027-02-01\n')
    analyse(run, report_dir, team)
    page = report_dir / "annual.html"
    page.write_text(render(run), encoding="utf-8")
    with Chromium(tmp_path / "profile") as browser:
        shot = _check_page(browser, page, tmp_path, "annual")
        review = browser.evaluate("document.querySelector('#review').innerText")
        assert "Update RTO/RPO based on actual times" in review
        assert "Nitro Enclave ASG" in review
        plan = browser.evaluate("document.querySelector('#remediation').innerText")
        assert "Platform team" in plan
        assert "2027-01-31" in plan
        assert "J. Smith" in plan
    print(f"annual screenshot: {shot}")
