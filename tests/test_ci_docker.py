"""`.ci/docker.sh` against stand-in `dockerd`/`docker` programs: the start-up logic only.

The stand-ins live in a temporary PATH directory; the pid files and the log are redirected
there too, so nothing here touches a real Docker engine. The stand-in engine "answers"
once it has written a marker file, which it does on its Nth start (N from the test).
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "docker.sh"

FAKE_DOCKERD = """\
#!/bin/bash
# stand-in dockerd: -p PIDFILE; answers (marker) from its ANSWER_ON-th start on
while [[ $# -gt 0 ]]; do [[ $1 == -p ]] && pidfile=$2; shift; done
echo $$ > "$pidfile"
starts=$(( $(cat "$FAKE_ROOT/starts" 2>/dev/null || echo 0) + 1 ))
echo $starts > "$FAKE_ROOT/starts"
(( starts >= ANSWER_ON )) && touch "$FAKE_ROOT/up"
trap 'rm -f "$FAKE_ROOT/up" "$pidfile"; exit 0' TERM
sleep 300 & wait
"""

FAKE_DOCKER = """\
#!/bin/bash
# stand-in docker CLI: `info` answers only while the stand-in engine is up
[[ -e $FAKE_ROOT/up ]] || { echo "Cannot connect to the Docker daemon" >&2; exit 1; }
[[ $* == *--format* ]] && echo "docker.sh: engine fake up"
exit 0
"""


@pytest.fixture
def fake(tmp_path: Path):
    """Environment running docker.sh against the stand-ins; kills what they leave."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("dockerd", FAKE_DOCKERD), ("docker", FAKE_DOCKER)):
        (bin_dir / name).write_text(textwrap.dedent(text))
        (bin_dir / name).chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        FAKE_ROOT=str(tmp_path),
        DOCKERD_LOG=str(tmp_path / "dockerd.log"),
        DOCKERD_PIDFILE=str(tmp_path / "docker.pid"),
        CONTAINERD_PIDFILE=str(tmp_path / "containerd.pid"),
        DOCKER_START_TIMEOUT="5",
        ANSWER_ON="1",
    )
    bystander = subprocess.Popen(["sleep", "300"])  # a live process that is not dockerd
    yield env, tmp_path, bystander
    bystander.kill()
    bystander.wait()
    subprocess.run(["pkill", "-TERM", "-f", str(bin_dir / "dockerd")], check=False)


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_stale_pid_files_of_other_processes_are_removed_and_dockerd_started(fake):
    env, root, bystander = fake
    # As on a machine restored from a snapshot: both pid files name a reused pid.
    (root / "docker.pid").write_text(f"{bystander.pid}\n")
    (root / "containerd.pid").write_text(f"{bystander.pid}\n")

    out = run(env)

    assert out.returncode == 0, out.stderr
    assert f"removing stale {root / 'docker.pid'}" in out.stderr
    assert f"removing stale {root / 'containerd.pid'}" in out.stderr
    assert not (root / "containerd.pid").exists()
    assert (root / "starts").read_text().strip() == "1"
    assert bystander.poll() is None, "the bystander process must be left alone"


def test_an_engine_that_never_answers_is_restarted_once(fake):
    env, root, _ = fake
    env["ANSWER_ON"] = "2"

    out = run(env)

    assert out.returncode == 0, out.stderr
    assert "restarting it once" in out.stderr
    assert (root / "starts").read_text().strip() == "2"


def test_gives_up_with_a_clear_error_when_the_engine_never_answers(fake):
    env, root, _ = fake
    env["ANSWER_ON"] = "99"

    out = run(env)

    assert out.returncode == 1
    assert "did not answer 'docker info' within 5s twice" in out.stderr
    assert str(root / "dockerd.log") in out.stderr


def test_an_engine_already_answering_is_left_as_is(fake):
    env, root, _ = fake
    (root / "up").touch()

    out = run(env)

    assert out.returncode == 0, out.stderr
    assert "already answering" in out.stderr
    assert not (root / "starts").exists()
