"""What a running twin is: its resource names, endpoints and process files, on disk.

Every process (the CLI, the harness, workers, the ASG controller) rebuilds its view of the
twin from `state.json` in the state directory, so no component depends on the memory of the
process that started it, and a killed harness leaves a twin the next command can manage.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from drills.environment import ACCOUNT_ID, DR_REGION, PRIMARY_REGION, Names
from drills.errors import TwinError

__all__ = ["ACCOUNT_ID", "DR_REGION", "PRIMARY_REGION", "REGION_HOSTS", "Names", "RegionState",
           "TwinState", "default_state_dir"]

#: Each region sits on a loopback address of its own (its API and the answers of its DNS
#: records; NATS stays on 127.0.0.1, where its partition proxy tells routes apart).
REGION_HOSTS = {PRIMARY_REGION: "127.0.1.1", DR_REGION: "127.0.2.1"}


def default_state_dir() -> Path:
    """`$DRILLS_STATE_DIR`, else `.drills/twin` under the current directory."""
    return Path(os.environ.get("DRILLS_STATE_DIR", ".drills/twin")).resolve()


@dataclass(frozen=True, slots=True)
class RegionState:
    """One region of the twin: its NATS cluster and the enclave ASG serving it."""

    name: str
    nats: dict[str, Any]  # NatsClusterSpec.to_dict()
    asg: str
    desired: int
    key_arn: str = ""
    ami_id: str = ""
    api: dict[str, Any] = field(default_factory=dict)  # drills.twin.api.ApiEndpoint
    host: str = "127.0.0.1"  # the region's own loopback address (its API, its DNS answers)


@dataclass(frozen=True, slots=True)
class TwinState:
    """A running (or starting) twin, as written to `state.json`."""

    state_dir: str
    profile: str
    aws: dict[str, Any]  # AwsEndpoint fields
    regions: dict[str, RegionState]
    names: Names = field(default_factory=Names)
    started_utc: str = ""
    population: int = 0
    version: int = 1
    dns: dict[str, Any] = field(default_factory=dict)  # drills.twin.dns.DnsEndpoint
    hosted_zone: str = ""  # Route 53 zone of vettid.dev

    @property
    def primary(self) -> RegionState:
        """The primary region (us-east-1)."""
        return self.regions[PRIMARY_REGION]

    @property
    def path(self) -> Path:
        return Path(self.state_dir) / "state.json"

    @property
    def workers_dir(self) -> Path:
        return Path(self.state_dir) / "workers"

    @property
    def aws_url(self) -> str:
        return f"http://{self.aws['host']}:{self.aws['port']}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def save(self) -> None:
        """Write atomically so a reader never sees half a file."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, state_dir: Path | None = None) -> TwinState:
        """Read the twin in `state_dir`; TwinError when there is none."""
        root = Path(state_dir) if state_dir else default_state_dir()
        path = root / "state.json"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TwinError(f"no local twin in {root}; start one with `drills twin up`") from None
        except json.JSONDecodeError as exc:
            raise TwinError(f"{path} is corrupt ({exc}); run `drills twin down` and start "
                            "a new twin") from None
        names = Names.from_dict(raw.pop("names"))
        regions = {k: RegionState(**v) for k, v in raw.pop("regions").items()}
        return cls(names=names, regions=regions, **raw)
