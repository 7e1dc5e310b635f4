"""`drills twin`: start, stop, inspect and use the local twin of the vault stack."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from drills.cli import say, state_dir
from drills.errors import EXIT_FAILED, TwinError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Add the `twin` command group to the `drills` parser."""
    twin = sub.add_parser("twin", help="manage the local twin of the vault stack")
    tsub = twin.add_subparsers(dest="twin_command", required=True)
    t_up = tsub.add_parser(
        "up", parents=[common], help="start the twin; returns once every component is healthy"
    )
    add_start_options(t_up)
    t_up.add_argument("--vaults", type=int, default=24, help="vaults to enroll (default 24)")
    t_up.add_argument(
        "--desired",
        type=int,
        default=2,
        help="enclave ASG desired capacity (default 2, as the runbook)",
    )
    t_up.add_argument(
        "--attach", action="store_true", help="stay in the foreground; Ctrl-C stops the twin"
    )
    tsub.add_parser("down", parents=[common], help="stop every process of the twin")
    tsub.add_parser(
        "status", parents=[common], help="show every component and its health (exit 1 if unhealthy)"
    )
    t_env = tsub.add_parser(
        "env", parents=[common], help="print shell exports that point aws/boto3 at the twin"
    )
    t_env.add_argument("--region", default="us-east-1")
    t_build = tsub.add_parser(
        "build-enclave", parents=[common],
        help="register an enclave build's AMI and print its id and PCR0/1/2 (runbook 6.2 "
             "step 1, what ./scripts/build-enclave.sh prints)")
    t_build.add_argument("--version", required=True, help="the build's version, e.g. 2.0.0")
    t_build.add_argument("--defect", choices=["crash-on-start", "wrong-pcrs"], default=None,
                         help="a build broken on purpose (for drills of runbook 6.3)")
    t_build.add_argument("--region", default="us-east-1")
    twin.set_defaults(func=cmd_twin)


def add_start_options(parser: argparse.ArgumentParser, when: str = "") -> None:
    """--nats and --timing: how a twin is started (by `twin up`, or by `run` `when` none
    runs)."""
    parser.add_argument("--nats", choices=["process", "container"], default="process",
                        help=f"NATS backend{when}: real nats-server processes (default) or "
                        "Docker containers")
    parser.add_argument("--timing", choices=["fast", "realistic"], default="fast",
                        help=f"timing profile{when}: the delays of AWS behaviours (boot, "
                        "health checks), fast (default) or realistic; see README")


def cmd_twin(args: argparse.Namespace) -> int:
    from drills.twin import manager

    if args.twin_command == "up":
        twin = manager.up(
            state_dir(args),
            timing=args.timing,
            backend=args.nats,
            vaults=args.vaults,
            desired=args.desired,
            progress=say,
        )
        say(f'twin ready in {twin.state.state_dir}; `eval "$(drills twin env)"` to use it')
        if args.attach:
            return _attach(twin.state.state_dir)
        return 0
    if args.twin_command == "down":
        if not manager.down(state_dir(args), progress=say):
            say("no twin is running there; nothing to stop")
        return 0
    if args.twin_command == "status":
        try:
            rows = manager.status(state_dir(args))
        except TwinError as exc:
            say(f"drills: {exc}")
            return EXIT_FAILED  # no twin: nothing is healthy
        width = max(len(r.name) for r in rows)
        for row in rows:
            print(f"{'ok  ' if row.healthy else 'FAIL'}  {row.name:<{width}}  {row.detail}")
        return 0 if all(r.healthy for r in rows) else 1
    if args.twin_command == "env":
        for key, value in manager.env(state_dir(args), args.region).items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    if args.twin_command == "build-enclave":
        return _build_enclave(args)
    raise AssertionError(args.twin_command)


def _build_enclave(args: argparse.Namespace) -> int:
    """Runbook 6.2 step 1 on the twin (./scripts/build-enclave.sh): register the AMI of an
    enclave build over the current one and print its id and PCRs, as the script does."""
    from drills.clients import Clients
    from drills.twin import manager
    from drills.twin.images import build_enclave

    twin = manager.Twin.load(state_dir(args))  # TwinError (exit 2) when there is none
    clients = Clients.for_twin(twin.state.aws_url, args.region)
    current = clients("ssm", args.region).get_parameter(
        Name=twin.names.param_current_ami)["Parameter"]["Value"]
    build = build_enclave(clients("ec2", args.region), args.version, defect=args.defect,
                          from_ami=current)
    for line in build.lines():
        print(line)
    return 0


def _attach(where: str) -> int:
    """Stay in the foreground until Ctrl-C, then take the twin down."""
    import signal

    from drills.twin import manager

    say("attached; press Ctrl-C to stop the twin")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        manager.down(Path(where), progress=say)
    return 0
