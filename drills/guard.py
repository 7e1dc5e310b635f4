"""Where a run may act at all: allow-listed accounts and regions, and production on purpose.

Checked once the target is open (its account id read with `sts get-caller-identity`) and
before anything is touched: before the pending faults of an earlier run are rolled back,
before any drill. `[allow] accounts` and `regions` in the objectives file name what a run
may act on; an account target needs both (a production user must say where drills may
run), the twin, which is disposable, defaults to its own account and regions. A run acts in
both regions of `[environment]` (the DR one in the replication and failover drills), so
both must be allowed.

Production is explicit: an account listed in `[allow] production_accounts`, or whose IAM
account alias (`iam list-account-aliases`) contains "prod", is production, and a run there
needs `--allow-production`; the report records the verdict and whether the flag was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drills.boundary import is_aws_error
from drills.capabilities import Capability
from drills.config import Clearance
from drills.errors import TargetNotAllowed

#: What in an account alias marks production ("vettid-prod", "production-main").
PRODUCTION_MARK = "prod"


@dataclass(frozen=True, slots=True)
class Identity:
    """What a target is: its account id, IAM account alias (None: none, or unreadable) and
    the regions a run acts in."""

    account_id: str
    alias: str | None
    regions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Cleared:
    """A target the run may act on: whether it is production (and why), and whether
    `--allow-production` was given; what the report records."""

    production: bool
    why: str
    allow_production: bool
    alias: str | None

    def describe(self) -> dict[str, Any]:
        """The report's fields of the target (`target` in report.json)."""
        out: dict[str, Any] = {"production": self.production,
                               "allow_production": self.allow_production}
        if self.alias:
            out["account_alias"] = self.alias
        return out


def account_alias(iam: Any) -> str | None:
    """The account's IAM alias (None when it has none, or the credentials may not read it:
    `[allow] production_accounts` is then what marks production)."""
    try:
        aliases = iam.list_account_aliases().get("AccountAliases", [])
    except Exception as exc:
        if is_aws_error(exc):
            return None
        raise
    return str(aliases[0]) if aliases else None


def production_reason(identity: Identity, clearance: Clearance) -> str | None:
    """Why the target counts as production (None: it does not)."""
    if identity.account_id in clearance.production_accounts:
        return f"account {identity.account_id} is in [allow] production_accounts"
    if identity.alias and PRODUCTION_MARK in identity.alias.lower():
        return f"its account alias {identity.alias!r} says {PRODUCTION_MARK!r}"
    return None


def clear(identity: Identity, clearance: Clearance, *, named: str,
          capabilities: frozenset[Capability], allow_production: bool) -> Cleared:
    """Refuse (TargetNotAllowed) a target whose account or regions the allow-list does not
    name, or a production one without `allow_production`; else what the report records.
    A disposable target (the twin) takes its own account and regions when none are listed."""
    own = Capability.DISPOSABLE in capabilities
    accounts = clearance.accounts
    if accounts is None and own:
        accounts = (identity.account_id,)
    if accounts is None:
        raise TargetNotAllowed(
            f"refusing to drill {named}: no account is allow-listed; add [allow] accounts = "
            f'["{identity.account_id}"] (and regions) to your objectives file if drills may '
            "act on it")
    if identity.account_id not in accounts:
        raise TargetNotAllowed(
            f"refusing to drill {named}: account {identity.account_id} is not in [allow] "
            f"accounts ({', '.join(accounts) or 'empty'}); check your credentials "
            "(aws sts get-caller-identity), or add the account if drills may act on it")
    regions = clearance.regions
    if regions is None and own:
        regions = identity.regions
    if regions is None:
        raise TargetNotAllowed(
            f"refusing to drill {named}: no region is allow-listed; add [allow] regions = "
            f"[{', '.join(map(repr, identity.regions))}] to your objectives file (a run acts "
            "in the primary and the DR region of [environment])".replace("'", '"'))
    outside = [r for r in identity.regions if r not in regions]
    if outside:
        raise TargetNotAllowed(
            f"refusing to drill {named}: region(s) {', '.join(outside)} not in [allow] "
            f"regions ({', '.join(regions) or 'empty'}); a run acts in the primary and the DR "
            "region of [environment]: add them, or drill another --region")
    why = production_reason(identity, clearance)
    if why is not None and not allow_production:
        raise TargetNotAllowed(
            f"refusing to drill {named}: it is production ({why}); pass --allow-production "
            "to drill it on purpose (the report records that you did)")
    return Cleared(why is not None, why or "", allow_production, identity.alias)
