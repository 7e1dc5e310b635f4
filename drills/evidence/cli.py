"""`drills report ...`: commands over run reports (verify, trend, ...)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Add the `report` command group to the `drills` parser."""
    report = sub.add_parser("report", parents=[common], help="work with run reports")
    report.add_subparsers(dest="report_command", required=True)
