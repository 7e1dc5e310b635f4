"""`drills report objectives-review` from index lines written the way a run writes them
(`index.entry_for` of typed run records, appended and read back): the p95 with its margin,
RPO as measured, never-met objectives as findings, twin rehearsals apart and labelled, and
the proposal as a valid TOML diff with its provenance."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from drills.cli import main
from drills.config import load_settings, runbook_objectives
from drills.errors import ConfigError, ReportError
from drills.evidence import index as index_mod
from drills.evidence import objectives_toml
from drills.evidence.fmt import parse_utc
from drills.evidence.model import (
    DrillRecord,
    Measurement,
    RpoMeasurement,
    RunRecord,
    Status,
)
from drills.evidence.objectives_review import (
    Direction,
    Review,
    build,
    parse_margin,
    review_section,
)
from drills.measure.timeline import Verdict

ASG, NATS = "Nitro Enclave ASG", "NATS Cluster"
AS_OF = parse_utc("2026-12-02T12:00:00Z")


def _run(root: Path, run_id: str, day: int, kind: str, rtos: dict[str, float | None],
         lost: int = 0, status: Status = Status.PASSED, expected_loss: bool = False) -> None:
    """Append the index line of a run whose one drill measured `rtos` (component -> RTO,
    None: not recovered) and lost `lost` acknowledged writes of the ASG's."""
    ended = f"2026-11-{day:02d}T10:00:00.000Z"
    run = RunRecord(run_id=run_id, exercise="monthly", selection=[],
                    target={"kind": kind, "region": "us-east-1"}, tool_version="0",
                    git_revision=None, started_utc=ended, objectives={}, ended_utc=ended)
    drill = DrillRecord(drill_id=f"{run_id}::d", name="drill", feature="F",
                        feature_path="monthly/f.feature", tags=[], started_utc=ended,
                        status=status)
    for component, rto in rtos.items():
        drill.measurements.append(Measurement(
            "service", component, 300.0, Verdict.RECOVERED if rto is not None else
            Verdict.NOT_RECOVERED, rto, rto, 0.1, None, rto is not None and rto <= 300,
            None, "probes"))
    drill.rpo.append(RpoMeasurement(ASG, 0, 100, 0, lost, 0.0, 0, lost == 0,
                                    expected_loss=expected_loss))
    run.drills.append(drill)
    index_mod.append(root, index_mod.entry_for(run, root / run_id))


def _review(root: Path, **kwargs: object) -> Review:
    return build(index_mod.read(root), runbook_objectives(), as_of=AS_OF, **kwargs)  # type: ignore[arg-type]


def _one(review: Review, component: str, key: str, kind: str = "account"):  # type: ignore[no-untyped-def]
    (found,) = [p for p in review.proposals
                if (p.component, p.key, p.target_kind) == (component, key, kind)]
    return found


def test_rto_is_the_p95_plus_the_margin_rounded_up_with_its_runs(tmp_path: Path) -> None:
    """Twenty account figures 10..200 s: nearest-rank p95 is 190 s, +25 % = 237.5, proposed
    238 s (tighter than 5 min); every run is named; RPO as measured is 0."""
    for i in range(20):
        _run(tmp_path, f"acct-{i:02d}", 1 + i, "account", {ASG: 10.0 * (i + 1)})
    review = _review(tmp_path)
    rto = _one(review, ASG, "rto")
    assert (rto.basis, rto.proposed, rto.n, rto.breaches) == (190.0, 238.0, 20, 0)
    assert rto.direction is Direction.TIGHTEN
    assert rto.sources == tuple(f"acct-{i:02d}" for i in range(20))
    rpo = _one(review, ASG, "rpo_writes")
    assert (rpo.proposed, rpo.direction) == (0.0, Direction.KEEP)
    assert review.findings == []
    assert not review.rehearsal_only
    assert _one(review, NATS, "rto").direction is Direction.NONE


def test_few_figures_make_the_worst_the_p95_and_the_margin_is_the_callers(
        tmp_path: Path) -> None:
    """Three figures: the p95 is the worst (said in how), the margin as given."""
    for i, rto in enumerate([40.0, 100.0, 70.0]):
        _run(tmp_path, f"a{i}", 1 + i, "account", {ASG: rto})
    rto = _one(_review(tmp_path, margin=0.5), ASG, "rto")
    assert (rto.basis, rto.proposed) == (100.0, 150.0)
    assert "the p95 is the worst" in rto.how()
    assert "+ 50% margin" in rto.how()


def test_never_met_is_a_finding_and_not_recovered_is_counted(tmp_path: Path) -> None:
    """Every NATS figure over 5 min (one never recovered): a finding; the p95 is of the
    recovered ones; losses in every run (2, then 1 write) propose rpo_writes 2, a finding
    too."""
    _run(tmp_path, "a1", 1, "account", {NATS: 400.0}, lost=2)
    _run(tmp_path, "a2", 2, "account", {NATS: None}, lost=1)
    review = _review(tmp_path)
    nats = _one(review, NATS, "rto")
    assert (nats.n, nats.not_recovered, nats.breaches, nats.basis) == (2, 1, 2, 400.0)
    assert nats.never_met
    assert nats.direction is Direction.LOOSEN
    assert _one(review, ASG, "rpo_writes").proposed == 2.0
    findings = sorted(review.findings)
    assert len(findings) == 2
    assert findings[0].startswith("NATS Cluster rto (account runs): never met in 2 figure(s)")
    assert "worst not recovered" in findings[0]
    assert "worst 2 write(s)" in findings[1]


def test_twin_rehearsals_are_kept_apart_and_labelled(tmp_path: Path) -> None:
    """Twin runs count only with include_twin; then each kind has its own rows; a proposal
    from twin runs alone is REHEARSAL ONLY, in the text, the HTML and the file."""
    _run(tmp_path, "t1", 1, "twin", {ASG: 12.0})
    _run(tmp_path, "t2", 2, "twin", {ASG: 14.0})
    without = _review(tmp_path)
    assert without.basis_kind is None
    assert all(p.n == 0 for p in without.proposals)
    assert without.twin_runs == ["t1", "t2"]
    review = _review(tmp_path, include_twin=True)
    assert review.rehearsal_only
    twin = _one(review, ASG, "rto", "twin")
    assert (twin.proposed, twin.sources) == (18.0, ("t1", "t2"))
    assert "REHEARSAL ONLY" in review_section(review)
    proposed = objectives_toml.propose(objectives_toml.render_defaults(runbook_objectives()),
                                       review)
    assert "# REHEARSAL ONLY (twin runs, not evidence): objectives-review" in proposed
    _run(tmp_path, "a1", 3, "account", {ASG: 100.0})
    both = _review(tmp_path, include_twin=True)
    assert not both.rehearsal_only
    assert [p.target_kind for p in both.for_file()] == ["account"] * len(both.for_file())
    assert _one(both, ASG, "rto", "twin").proposed == 18.0


def test_expected_breaches_and_losses_on_purpose_are_left_out_and_said(
        tmp_path: Path) -> None:
    """A flawed procedure's breach (@expected_breach) and a loss caused on purpose do not
    move the proposal; notes say how many were left out."""
    _run(tmp_path, "a1", 1, "account", {ASG: 60.0})
    _run(tmp_path, "a2", 2, "account", {ASG: 900.0}, status=Status.EXPECTED_BREACH)
    _run(tmp_path, "a3", 3, "account", {}, lost=40, expected_loss=True)
    review = _review(tmp_path)
    assert _one(review, ASG, "rto").sources == ("a1",)
    assert _one(review, ASG, "rpo_writes").proposed == 0.0
    assert any("@expected_breach" in n for n in review.notes)
    assert any("lose data on purpose" in n for n in review.notes)


def test_runs_older_than_a_year_do_not_count(tmp_path: Path) -> None:
    """The window is the year up to --as-of."""
    _run(tmp_path, "a1", 1, "account", {ASG: 60.0})
    review = build(index_mod.read(tmp_path), runbook_objectives(),
                   as_of=parse_utc("2028-01-01T00:00:00Z"))
    assert review.account_runs == []


@pytest.mark.parametrize(("text", "value"), [("25%", 0.25), ("0.1", 0.1), ("0", 0.0),
                                             ("150%", 1.5)])
def test_margin_reads_percentages_and_fractions(text: str, value: float) -> None:
    assert parse_margin(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["-5%", "lots", "2000%", ""])
def test_a_bad_margin_says_what_to_write(text: str) -> None:
    with pytest.raises(ConfigError, match=r"e\.g\. 25% or 0\.25"):
        parse_margin(text)


TEAM_FILE = """\
# our objectives, agreed 2026-06
[service]
rto = "15m"   # the SLO
[probes]
interval = 0.2
[components."Nitro Enclave ASG"]
priority = "P1"
rto = "5m"
"""


def test_the_proposal_edits_the_teams_file_in_place_and_loads(tmp_path: Path) -> None:
    """Only the proposed keys change, each with its provenance above it; a component with no
    table gets one; the rest of the file (probes, comments) stays; the result loads."""
    for i in range(3):
        _run(tmp_path, f"a{i}", 1 + i, "account", {ASG: 30.0 + i, "Vault Service": 50.0,
                                                   "Custom Store": 20.0})
    current = tmp_path / "objectives.toml"
    current.write_text(TEAM_FILE, encoding="utf-8")
    review = build(index_mod.read(tmp_path), load_settings(current).objectives, as_of=AS_OF)
    proposed = objectives_toml.propose(TEAM_FILE, review)
    data = tomllib.loads(proposed)
    assert data["probes"] == {"interval": 0.2}
    assert data["service"]["rto"] == 63
    assert data["components"]["Nitro Enclave ASG"] == {"priority": "P1", "rto": 40}
    assert data["components"]["Custom Store"] == {"rto": 25}  # no loss measured there
    assert "# our objectives, agreed 2026-06" in proposed
    diff = objectives_toml.unified(TEAM_FILE, proposed, "objectives.toml")
    assert diff.startswith("--- objectives.toml\n+++ objectives.toml (proposed)\n")
    assert '-rto = "5m"\n' in diff
    assert "+rto = 40  # 40.00 s; was 300 (5 min 00 s)\n" in diff
    assert "+# objectives-review 2026-12-02T12:00:00+00:00"[:30] in diff
    assert "from the account runs a0, a1, a2" in diff.replace("\n+# ", " ")
    changed = [line for line in diff.splitlines()[2:] if line[:1] in "+-"]
    assert not [line for line in changed if "interval" in line or "agreed" in line]


def test_a_layout_it_cannot_edit_is_refused_not_mangled(tmp_path: Path) -> None:
    """Components as an inline table: appending a table would redefine it, so ReportError
    says to apply the proposal by hand."""
    _run(tmp_path, "a1", 1, "account", {ASG: 30.0})
    inline = 'components = { "Nitro Enclave ASG" = { rto = 300 } }\n'
    review = _review(tmp_path)
    with pytest.raises(ReportError, match="by hand"):
        objectives_toml.propose(inline, review)


def test_cli_prints_the_review_and_writes_diff_proposal_and_html(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command reads the index under --reports, prints the table then the diff, writes
    --diff, --proposed (a valid objectives file) and --html; a bad margin exits 2."""
    root = tmp_path / "reports"
    root.mkdir()
    for i in range(3):
        _run(root, f"acct-{i}", 1 + i, "account", {ASG: 20.0 + i})
    out = {name: tmp_path / name for name in ("d.diff", "p.toml", "r.html")}
    assert main(["report", "objectives-review", "--reports", str(root), "--as-of",
                 "2026-12-02T12:00:00Z", "--margin", "10%", "--diff", str(out["d.diff"]),
                 "--proposed", str(out["p.toml"]), "--html", str(out["r.html"])]) == 0
    printed = capsys.readouterr().out
    assert "3 account run(s), 0 twin rehearsal(s)" in printed
    assert "runs: acct-0, acct-1, acct-2" in printed
    assert "+rto = 25  # 25.00 s; was 300 (5 min 00 s)" in printed
    assert out["d.diff"].read_text() in printed
    assert load_settings(out["p.toml"]).objectives.for_component(ASG).rto == 25
    assert "Objectives review" in out["r.html"].read_text()
    assert main(["report", "objectives-review", "--reports", str(root), "--margin",
                 "many"]) == 2
