"""Enclave images of the twin: what runbook 6.2's `./scripts/build-enclave.sh` produces.

A build of version X is an AMI whose enclave image file has PCR0/1/2 of that build
(`drills.attestation.build_pcrs`); the twin records them on the AMI as tags, which is where a
booting instance's enclave reads what it measures. A build can be made defective on purpose,
for runbook 6.3 ("if the new enclave has issues"):

- `crash-on-start`: the enclave exits as it starts (the instance never serves);
- `wrong-pcrs`: the enclave serves, but measures PCRs other than the ones the build
  published (a debug image shipped by mistake), so the apps refuse it.

`drills twin build-enclave --version X` registers one and prints its AMI id and PCRs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from drills.attestation import build_pcrs
from drills.errors import ConfigError

TAG_VERSION = "vettid:enclave-version"
TAG_DEFECT = "vettid:enclave-defect"


class Defect(StrEnum):
    """How a build may be broken on purpose."""

    CRASH_ON_START = "crash-on-start"
    WRONG_PCRS = "wrong-pcrs"


def image_name(version: str) -> str:
    return f"vettid-nitro-enclave-v{version}"


@dataclass(frozen=True, slots=True)
class EnclaveBuild:
    """A registered enclave AMI and the PCRs its build published."""

    version: str
    ami_id: str
    pcrs: dict[int, str]
    defect: Defect | None = None

    def lines(self) -> list[str]:
        """What build-enclave.sh prints: the AMI id and PCR0/1/2."""
        out = [f"AMI: {self.ami_id}", f"Version: {self.version}"]
        out += [f"PCR{i}: {v}" for i, v in sorted(self.pcrs.items())]
        if self.defect:
            out.append(f"Defect (drill): {self.defect}")
        return out


def build_enclave(ec2: Any, version: str, *, defect: str | None = None,
                  from_ami: str | None = None) -> EnclaveBuild:
    """Register the AMI of enclave build `version` (over `from_ami`'s snapshots when given,
    as an AMI copy would be) and record its PCRs; returns what the build published."""
    if not version or any(c.isspace() for c in version):
        raise ConfigError(f"an enclave version is one word, like 2.0.0; got {version!r}")
    broken = Defect(defect) if defect else None
    extra: dict[str, Any] = {"Architecture": "x86_64", "RootDeviceName": "/dev/xvda",
                             "VirtualizationType": "hvm"}
    if from_ami:
        source = ec2.describe_images(ImageIds=[from_ami])["Images"][0]
        mappings = [{"DeviceName": m["DeviceName"], "Ebs": {
            k: v for k, v in m["Ebs"].items()
            if k in ("SnapshotId", "VolumeSize", "VolumeType", "DeleteOnTermination")}}
            for m in source.get("BlockDeviceMappings", []) if "Ebs" in m]
        if mappings:
            extra["BlockDeviceMappings"] = mappings
    ami = ec2.register_image(Name=image_name(version),
                             Description=f"VettID Nitro Enclave parent AMI, enclave {version}",
                             **extra)["ImageId"]
    pcrs = build_pcrs(version)
    tags = [{"Key": TAG_VERSION, "Value": version}]
    tags += [{"Key": f"vettid:pcr{i}", "Value": v} for i, v in pcrs.items()]
    if broken:
        tags.append({"Key": TAG_DEFECT, "Value": broken.value})
    ec2.create_tags(Resources=[ami], Tags=tags)
    return EnclaveBuild(version, ami, pcrs, broken)


@dataclass(frozen=True, slots=True)
class Measured:
    """What an enclave booted from an AMI measures, and whether it starts at all."""

    version: str
    pcrs: dict[int, str]
    defect: Defect | None


def measured(ec2: Any, ami_id: str) -> Measured:
    """The PCRs an enclave booted from `ami_id` measures (from the build's tags)."""
    image = ec2.describe_images(ImageIds=[ami_id])["Images"][0]
    tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
    version = tags.get(TAG_VERSION, image.get("Name", ami_id))
    defect = Defect(tags[TAG_DEFECT]) if TAG_DEFECT in tags else None
    published = {i: tags.get(f"vettid:pcr{i}") or build_pcrs(version)[i] for i in range(3)}
    if defect is Defect.WRONG_PCRS:
        return Measured(version, build_pcrs(f"{version}-debug"), defect)
    return Measured(version, published, defect)
