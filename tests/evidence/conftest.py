"""Real runs for the evidence tests: three `drills run`s into one reports root on the twin.

1. `breach`: the single-instance feature with a 0.2 s Nitro Enclave ASG objective: both drills
   breach it, so the report has findings.
2. `outage`: the complete-enclave-failure feature: probes fail, then recover (a real outage on
   the timeline); the breach findings are carried over (their drills did not run).
3. `monthly`: `drills run monthly` with an on-call participant: the single-instance drills
   pass and close the findings.

A canary SecureString is planted under /vettid/ for the duration of the runs, and the twin's
own SecureString (`/vettid/nitro/parent-nats-creds`) is read, so every artifact can be
scanned for both.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drills.plugin import new_run_id
from drills.twin.manager import Twin, _serving
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
CANARY_PARAM = "/vettid/nitro/drills-evidence-canary"
CREDS_PARAM = "/vettid/nitro/parent-nats-creds"


@dataclass
class Runs:
    """The reports root, each run's report directory and output, and the secret values."""

    root: Path
    journal: Path
    dirs: dict[str, Path] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)
    output: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)

    def report(self, name: str) -> dict:  # type: ignore[type-arg]
        return json.loads((self.dirs[name] / "report.json").read_text(encoding="utf-8"))


def drills_cli(*args: str, env: dict[str, str], timeout: float = 900
               ) -> subprocess.CompletedProcess[str]:
    """`drills ...` as a user runs it, from the project root."""
    return subprocess.run([sys.executable, "-m", "drills.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _wait_serving(twin: Twin) -> None:
    desired, _ = twin.in_service()
    wait_for(lambda: len(_serving(twin)) >= desired, 90, "the twin to serve at capacity",
             step=0.25)


@pytest.fixture(scope="session")
def runs(twin: Twin, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Three real runs into one reports root (see the module docstring)."""
    base = tmp_path_factory.mktemp("evidence")
    result = Runs(root=base / "reports", journal=base / "journal.jsonl")
    env = {k: v for k, v in os.environ.items() if k != "DRILLS_REMEDIATION"}
    env.update(DRILLS_STATE_DIR=twin.state.state_dir, DRILLS_JOURNAL=str(result.journal))
    ssm = twin.clients("ssm")
    creds = ssm.get_parameter(Name=CREDS_PARAM, WithDecryption=True)["Parameter"]["Value"]
    canary = f"canary-{secrets.token_hex(16)}"
    result.secrets = [creds, json.loads(creds)["password"], canary]
    tight = base / "tight.toml"
    tight.write_text('[components."Nitro Enclave ASG"]\nrto = 0.2\n', encoding="utf-8")
    plan = [
        ("breach", "ad-hoc", ["--objectives", str(tight),
                              "features/monthly/single_instance_failure.feature"]),
        ("outage", "ad-hoc", ["features/scenarios/complete_enclave_failure.feature"]),
        ("monthly", "monthly", ["--participant", "Ana Ops:on-call engineer", "monthly"]),
    ]
    ssm.put_parameter(Name=CANARY_PARAM, Value=canary, Type="SecureString", Overwrite=True)
    try:
        for name, exercise, args in plan:
            _wait_serving(twin)
            run_id = new_run_id(exercise)
            done = drills_cli("run", "--reports", str(result.root), "--run-id", run_id, *args,
                              env=env)
            result.dirs[name] = result.root / run_id
            result.codes[name] = done.returncode
            result.output[name] = done.stdout + done.stderr
            assert (result.dirs[name] / "report.json").exists(), result.output[name]
    finally:
        ssm.delete_parameter(Name=CANARY_PARAM)  # other tests on this twin never see it
    _wait_serving(twin)
    return result


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium, or a skip saying how to install it."""
    from tests.evidence.browser import find_chromium

    path = find_chromium()
    if path is None:
        pytest.skip("chromium is not installed: `apt-get install -y chromium` (Debian) is "
                    "needed to render the HTML reports in a real browser")
    return path
