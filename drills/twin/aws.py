"""The AWS part of the local twin: a moto server in its own process.

    python -m drills.twin.aws --port P --pid-file F [--host 127.0.0.1]
                              [--log-file L] [--verbose] [--detach]

installs the fidelity layer (`drills.twin.fidelity`), serves every moto service on
one port (S3 path-style, KMS, SSM, DynamoDB, EC2, autoscaling, ...), writes its pid
file once it listens and removes it when SIGTERM or SIGINT stops it.

From any process, `start_aws` launches that server detached and `stop_aws` stops it
again through the pid file alone, so the process that stops the twin need not be the
one that started it. `client_env` gives the environment that points the plain `aws`
CLI and boto3 at the twin.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from drills.errors import TwinError
from drills.twin import control
from drills.twin.ports import free_port
from drills.twin.procs import live_pid

__all__ = [
    "AwsEndpoint",
    "client_env",
    "endpoint_in",
    "fake_credentials",
    "is_running",
    "reset",
    "start_aws",
    "stop_aws",
]

_MODULE = "drills.twin.aws"
#: The directory that holds the `drills` package, so the child can import it.
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_LOG_TAIL_LINES = 30
_POLL_INTERVAL = 0.05
_log = logging.getLogger(_MODULE)


@dataclass(frozen=True, slots=True)
class AwsEndpoint:
    """Where a running AWS twin listens, and the files that identify it."""

    host: str
    port: int
    pid_file: str
    log_file: str

    @property
    def url(self) -> str:
        """Base URL for boto3 `endpoint_url` / `AWS_ENDPOINT_URL`."""
        return f"http://{self.host}:{self.port}"


# --------------------------------------------------------------------------- client


def endpoint_in(workdir: Path, port: int = 0) -> AwsEndpoint:
    """Where a server started in `workdir` on `port` (0: a free one) will listen, and its
    files; nothing starts (so a twin can record it before it starts the server)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return AwsEndpoint(host="127.0.0.1", port=port or free_port(),
                       pid_file=str(workdir / "aws.pid"), log_file=str(workdir / "aws.log"))


def start_aws(workdir: Path, port: int = 0, timeout: float = 20.0) -> AwsEndpoint:
    """Launch the moto server detached, wait until it answers HTTP, and return it.

    `port=0` picks a free port. Pid and log files go to `workdir` (`aws.pid`,
    `aws.log`). Raises `TwinError`, with the tail of the log, if it does not come up.
    """
    endpoint = endpoint_in(workdir, port)
    running = _twin_pid(endpoint)
    if running is not None:
        raise TwinError(
            f"an AWS twin is already running (pid {running}, pid file {endpoint.pid_file}); "
            "stop it with stop_aws() or `drills twin down` before starting another"
        )
    Path(endpoint.pid_file).unlink(missing_ok=True)  # stale: its process is gone

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    command = [
        sys.executable, "-m", _MODULE,
        "--host", endpoint.host,
        "--port", str(endpoint.port),
        "--pid-file", endpoint.pid_file,
        "--log-file", endpoint.log_file,
        "--detach",
    ]  # fmt: skip
    # stdout/stderr also go to the log: tracebacks from before logging is set up land there.
    with open(endpoint.log_file, "ab") as log:
        launcher = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own group: Ctrl-C in the caller's terminal spares it
        )
    deadline = time.monotonic() + timeout

    def fail(what: str) -> TwinError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(launcher.pid, signal.SIGKILL)  # the server is still in that group
        launcher.wait()
        return TwinError(f"the AWS twin {what}; see {endpoint.log_file}:\n{_log_tail(endpoint)}")

    # The launcher exits 0 once the server's socket listens (the server lives on as
    # its forked child), or non-zero if it cannot bind or start.
    try:
        status = launcher.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise fail(f"did not bind {endpoint.url} within {timeout:g} s") from None
    if status != 0:
        raise fail(f"exited with status {status} before listening on {endpoint.url}")
    while not (control.answers(endpoint.url) and Path(endpoint.pid_file).exists()):
        if time.monotonic() >= deadline:
            raise fail(f"did not answer on {endpoint.url} within {timeout:g} s")
        time.sleep(_POLL_INTERVAL)
    return endpoint


def stop_aws(endpoint: AwsEndpoint, timeout: float = 10.0) -> None:
    """Stop the twin named by the pid file: SIGTERM, then SIGKILL after `timeout`.

    Idempotent: a missing pid file or a process already gone is not an error.
    """
    pid = _twin_pid(endpoint)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not _wait_gone(pid, 5.0):
                raise TwinError(
                    f"the AWS twin (pid {pid}) survived SIGKILL; "
                    "check `ps` for a process stuck in the kernel (state D)"
                )
    # The server removes its own pid file on a clean exit; not after SIGKILL or a crash.
    Path(endpoint.pid_file).unlink(missing_ok=True)


def is_running(endpoint: AwsEndpoint) -> bool:
    """True if the pid file names a live twin server process (not whether it answers)."""
    return _twin_pid(endpoint) is not None


def reset(endpoint: AwsEndpoint) -> None:
    """Forget every resource in every service (`POST /moto-api/reset`)."""
    request = urllib.request.Request(endpoint.url + "/moto-api/reset", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10.0) as response:
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise TwinError(
            f"could not reset the AWS twin at {endpoint.url} ({exc}); "
            f"is it running? see {endpoint.log_file}"
        ) from exc


def fake_credentials() -> dict[str, str]:
    """Credentials moto accepts; never valid against a real account."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_SECURITY_TOKEN": "testing",
    }


def client_env(endpoint: AwsEndpoint, region: str) -> dict[str, str]:
    """Environment that sends the `aws` CLI and boto3 to the twin, with fake credentials."""
    return {
        **fake_credentials(),
        "AWS_ENDPOINT_URL": endpoint.url,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }


def _twin_pid(endpoint: AwsEndpoint) -> int | None:
    """The pid in the pid file if that process is alive and is the twin server writing it
    (checked against its argv: a recycled pid is never signalled)."""
    return live_pid(Path(endpoint.pid_file), _MODULE, endpoint.pid_file)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
        if reaped:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) still answers kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pidfd = _pidfd(pid)
    try:
        while _alive(pid):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if pidfd is not None:  # readable when the process exits
                select.select([pidfd], [], [], min(remaining, 0.5))
            else:
                time.sleep(min(remaining, _POLL_INTERVAL))
        return True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _log_tail(endpoint: AwsEndpoint) -> str:
    try:
        lines = Path(endpoint.log_file).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(log is empty)"


# --------------------------------------------------------------------------- server


def serve(
    host: str,
    port: int,
    pid_file: Path,
    log_file: Path | None = None,
    verbose: bool = False,
    detach: bool = False,
) -> None:
    """Run the moto server with the fidelity layer until SIGTERM or SIGINT.

    With `detach`, fork once the socket listens: the parent exits 0 at once (telling
    `start_aws` the port is bound), the child serves, so the caller of `start_aws`
    never holds an unreaped child and the server outlives it.
    """
    _configure_logging(log_file, verbose)
    os.environ["MOTO_PORT"] = str(port)  # moto builds some URLs back to itself from it

    # Imported here: moto is heavy and only the server process needs it.
    _share_lookups()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from drills.twin import fidelity

    fidelity.install()
    app = fidelity.ControlApp(DomainDispatcherApplication(create_backend_app))

    # Block the stop signals before any thread starts (threads inherit the mask), so
    # only the main thread's sigwait receives them: no handler runs mid-request.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server = make_server(host, port, app, threaded=True)  # bound and listening
    if detach and os.fork() > 0:
        os._exit(0)  # no atexit, no flushing: the child owns the log and the socket
    # A short poll interval makes shutdown() (and so stop_aws) return quickly.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="moto-server", daemon=True
    )
    thread.start()
    # moto builds its EC2 backend (thousands of AMIs and instance types) on first use, about
    # a second a region on 2 cores, and imports CloudFormation's parser as slowly: do both
    # now, while the caller provisions the other services.
    threading.Thread(target=_warm_up, name="moto-warm-up", daemon=True).start()
    _write_pid_file(pid_file)
    _log.info("AWS twin listening on http://%s:%d", host, port)
    try:
        received = signal.sigwait(stop_signals)
        _log.info("stopping on %s", signal.Signals(received).name)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5.0)
        pid_file.unlink(missing_ok=True)


def _share_lookups() -> None:
    """Make moto read its data once per server rather than once per use.

    - Every `boto3.Session().get_available_regions(...)` is answered from one session:
      moto's EC2 models ask three fresh sessions at import, each parsing botocore's
      endpoint data again (half a second of the server's start on 2 cores).
    - moto's model loader (botocore's, plus moto's extras) is one instance, shared with
      that session, so each service and paginator model is parsed once, not once per
      loader.
    - The list of moto's modules, which the dispatcher computes on every request (some
      200 stats of moto's package directory, under its lock), is computed once.

    The answers are the same: they come from the same files, which do not change while
    the server runs."""
    from functools import cache

    import boto3.session
    import moto.backends
    import moto.core.utils
    from moto.core.loaders import create_loader

    loader = create_loader()
    moto.core.utils.create_loader = lambda: loader  # type: ignore[assignment]
    shared, lookup = boto3.session.Session(), boto3.session.Session.get_available_regions
    shared._session.register_component("data_loader", loader)

    @cache
    def regions(service: str, partition_name: str = "aws",
                allow_non_regional: bool = False) -> list[str]:
        return lookup(shared, service, partition_name, allow_non_regional)

    def get_available_regions(self: boto3.session.Session, service_name: str,
                              partition_name: str = "aws",
                              allow_non_regional: bool = False) -> list[str]:
        return list(regions(service_name, partition_name, allow_non_regional))

    boto3.session.Session.get_available_regions = get_available_regions  # type: ignore[method-assign]
    modules = frozenset(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]


def _warm_up(account: str = "123456789012", regions: tuple[str, ...] = ("us-east-1", "us-west-2")
             ) -> None:
    """Do ahead of first use, in the order a twin's start-up needs them, what moto does
    slowly on a service's first call: build the EC2 backends, import CloudFormation (its
    parser imports the models of every resource type it knows: a second or more)."""
    from moto.autoscaling.models import autoscaling_backends
    from moto.ec2.models import ec2_backends

    try:
        ec2_backends[account][regions[0]]
        autoscaling_backends[account][regions[0]]
        import moto.cloudformation.models  # noqa: F401
        for region in regions[1:]:
            ec2_backends[account][region]
            autoscaling_backends[account][region]
    except Exception:  # warming up is an optimisation; the first real call retries it
        _log.exception("warm-up of the EC2 and CloudFormation backends failed")


def _write_pid_file(pid_file: Path) -> None:
    # Write then rename, so a reader never sees a half-written pid.
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    partial = pid_file.with_name(pid_file.name + ".tmp")
    partial.write_text(f"{os.getpid()}\n")
    partial.replace(pid_file)


def _configure_logging(log_file: Path | None, verbose: bool) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    # werkzeug logs one INFO line per request and adds its own stderr handler unless
    # its logger already has a level: set one either way.
    logging.getLogger("werkzeug").setLevel(logging.INFO if verbose else logging.WARNING)
    _log.setLevel(logging.INFO)  # start and stop lines, even when quiet


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m drills.twin.aws`."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {_MODULE}", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to bind")
    parser.add_argument("--pid-file", type=Path, required=True, help="written once listening")
    parser.add_argument("--log-file", type=Path, help="log here instead of stderr")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument(
        "--detach", action="store_true", help="fork once listening; the parent exits 0"
    )
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.pid_file, args.log_file, args.verbose, args.detach)


if __name__ == "__main__":
    main()
