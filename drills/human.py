"""Human steps of an exercise (runbook 7.3 "Include on-call team participation"), timed.

A human step is a decision or an acknowledgement a person makes (declare the disaster,
approve failover, confirm the smoke tests, approve failback, answer a page), or a runbook
command a person runs while the harness watches for its effect (the DR ASG's desired
capacity changing). In an interactive run (`drills run annual --operator NAME:ROLE` from a
terminal) the harness shows the runbook text and the command at the terminal, and records
who acknowledged and when. Without a terminal (CI) each step is acknowledged at once and
marked `automated`.

pytest captures stdin and stdout (file descriptors 0-2), so the console talks to the
controlling terminal itself (`/dev/tty`), which no capture touches; `drills run` decides
whether the run is interactive before pytest starts (stdin is a tty, an operator is named).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TextIO

from drills.errors import ConfigError, HumanDeclined
from drills.evidence.model import HumanStepRecord
from drills.journal import utc_at


class Role(StrEnum):
    """The exercise's roles: who runs it, who records it, who decides, and the appendix's
    escalation path (L1 on-call engineer to L4 executive)."""

    EXECUTOR = "executor"
    SCRIBE = "scribe"
    INCIDENT_COMMANDER = "incident-commander"
    L1 = "on-call-l1"
    L2 = "on-call-l2"
    L3 = "on-call-l3"
    L4 = "on-call-l4"


#: The runbook appendix's escalation levels, as roles.
LEVEL_ROLE = {"L1": Role.L1, "L2": Role.L2, "L3": Role.L3, "L4": Role.L4}


class Mode(StrEnum):
    INTERACTIVE = "interactive"  # a person acknowledged at the terminal
    AUTOMATED = "automated"  # no terminal: acknowledged by the harness


@dataclass(frozen=True, slots=True)
class Operator:
    """A person at the terminal and the role they play."""

    name: str
    role: Role

    @classmethod
    def parse(cls, value: str, where: str = "--operator") -> Operator:
        """'NAME:ROLE' (ROLE one of `Role`); ConfigError saying what to write otherwise."""
        name, _, role = value.partition(":")
        roles = ", ".join(r.value for r in Role)
        if not name.strip() or not role.strip():
            raise ConfigError(f"{where} {value!r}: write NAME:ROLE, e.g. 'Dana:incident-"
                              f"commander' (roles: {roles})")
        try:
            return cls(name.strip(), Role(role.strip().lower()))
        except ValueError:
            raise ConfigError(f"{where} {value!r}: unknown role {role.strip()!r}; roles: "
                              f"{roles}") from None


@dataclass(frozen=True, slots=True)
class HumanStep:
    """What a person is asked to do: the role that does it, the runbook's words for it and
    the command to run (empty for a decision)."""

    key: str  # e.g. "approve-failover"
    action: str  # e.g. "approve failover to the DR region"
    role: Role
    runbook: str  # the section, e.g. "5.2"
    text: str  # the runbook's text for it
    command: str = ""


@dataclass(frozen=True, slots=True)
class Ack:
    """One human step as it was done: by whom, how, when it was asked and answered
    (monotonic and UTC), and what effect was seen (a watched command)."""

    step: HumanStep
    by: str
    role: str
    mode: Mode
    asked: float
    answered: float
    effect: str = ""

    @property
    def took(self) -> float:
        """Seconds from the prompt to the acknowledgement (or the effect)."""
        return self.answered - self.asked

    @property
    def asked_utc(self) -> str:
        return utc_at(self.asked)

    @property
    def answered_utc(self) -> str:
        return utc_at(self.answered)


#: A watched effect: None once it is seen, else what is seen instead.
Effect = Callable[[], str | None]


class Console:
    """The terminal the operators answer at: prints a step, reads an answer."""

    def __init__(self, reader: TextIO, writer: TextIO) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    def open_tty(cls) -> Console:
        """The controlling terminal (OSError when the process has none)."""
        return cls(open("/dev/tty", encoding="utf-8"),
                   open("/dev/tty", "w", encoding="utf-8"))

    def close(self) -> None:
        self.reader.close()
        self.writer.close()

    def show(self, step: HumanStep, who: Operator | None, watching: bool) -> None:
        lines = [f"\n== human step: {step.action} ({step.role.value}, runbook {step.runbook})"]
        lines += [f"   {line}" for line in step.text.splitlines()]
        if step.command:
            lines += ["   run:"] + [f"     {line}" for line in step.command.splitlines()]
        default = f" as {who.name} ({who.role.value})" if who else ""
        if watching:
            by = f" (default: {who.name})" if who else ""
            lines.append(f"   the harness watches for the effect; press Enter to check now, "
                         f"type a name to record who ran it{by}, or 'abort' to stop the "
                         "exercise")
        else:
            lines.append(f"   press Enter to acknowledge{default}, or type your name; 'abort' "
                         "stops the exercise")
        self.say("\n".join(lines))

    def say(self, text: str) -> None:
        self.writer.write(text + "\n")
        self.writer.flush()

    def ask(self) -> str:
        self.writer.write("> ")
        self.writer.flush()
        line = self.reader.readline()
        if not line:
            raise HumanDeclined("the terminal closed while a human step waited for an answer")
        return line.strip()

    def ready(self, timeout: float) -> bool:
        """Whether a line can be read within `timeout` seconds."""
        return bool(select.select([self.reader], [], [], timeout)[0])


class Crew:
    """The people of an exercise and how they answer: at a console (interactive), or not at
    all (automated: every step acknowledged at once)."""

    def __init__(self, operators: list[Operator], console: Console | None,
                 why_automated: str = "") -> None:
        self.operators, self.console = operators, console
        self.why_automated = why_automated

    @property
    def mode(self) -> Mode:
        return Mode.INTERACTIVE if self.console is not None else Mode.AUTOMATED

    def close(self) -> None:
        if self.console is not None:
            self.console.close()

    def who(self, role: Role) -> Operator | None:
        """The operator who plays `role`, else the first one (None: nobody named)."""
        return next((o for o in self.operators if o.role is role),
                    self.operators[0] if self.operators else None)

    def _answerer(self, step: HumanStep, answer: str) -> tuple[str, str]:
        if answer.lower() == "abort":
            raise HumanDeclined(f"{step.action} was refused at the terminal ('abort'); the "
                                "exercise stops here and its faults are reverted")
        if answer:
            named = next((o for o in self.operators if o.name.lower() == answer.lower()), None)
            return (named.name, named.role.value) if named else (answer, step.role.value)
        who = self.who(step.role)
        return (who.name, who.role.value) if who else ("operator", step.role.value)

    def acknowledge(self, step: HumanStep) -> Ack:
        """Ask for `step` and wait for the answer (automated: acknowledged at once)."""
        asked = time.monotonic()
        if self.console is None:
            return Ack(step, "drills (automated)", step.role.value, Mode.AUTOMATED, asked,
                       time.monotonic())
        self.console.show(step, self.who(step.role), watching=False)
        by, role = self._answerer(step, self.console.ask())
        answered = time.monotonic()
        self.console.say(f"   acknowledged by {by} ({role}) after {answered - asked:.1f}s")
        return Ack(step, by, role, Mode.INTERACTIVE, asked, answered)

    def await_effect(self, step: HumanStep, effect: Effect, timeout: float,
                     poll: float = 0.5) -> Ack:
        """Ask a person to run `step.command` and wait until `effect` shows it ran; timed
        from the prompt to the first poll that saw it. Automated: nothing is awaited (the
        harness runs the command itself next)."""
        asked = time.monotonic()
        if self.console is None:
            return Ack(step, "drills (automated)", step.role.value, Mode.AUTOMATED, asked,
                       time.monotonic(), "run by the harness")
        console = self.console
        console.show(step, self.who(step.role), watching=True)
        by, role = self._answerer(step, "")
        deadline = asked + timeout
        console.writer.write("> ")
        console.writer.flush()
        while (seen := effect()) is not None:
            if time.monotonic() > deadline:
                raise HumanDeclined(f"{step.action}: no effect within {timeout:g}s of the "
                                    f"prompt ({seen}); the exercise stops here")
            if console.ready(poll):
                line = console.reader.readline()
                if not line:
                    raise HumanDeclined("the terminal closed while a human step waited")
                by, role = self._answerer(step, line.strip()) if line.strip() else (by, role)
                console.say(f"   not yet: {seen}")
                console.writer.write("> ")
                console.writer.flush()
        answered = time.monotonic()
        console.say(f"\n   effect seen after {answered - asked:.1f}s; recorded as run by {by} "
                    f"({role})")
        return Ack(step, by, role, Mode.INTERACTIVE, asked, answered, "effect seen")


def record(ack: Ack, origin: float | None) -> HumanStepRecord:
    """The evidence of one human step; `origin`: the exercise's first fault (monotonic)."""
    def rel(moment: float) -> float | None:
        return round(moment - origin, 3) if origin is not None and moment >= origin else None

    step = ack.step
    return HumanStepRecord(step.key, step.action, step.role.value, step.runbook, step.command,
                           ack.mode.value, ack.by, ack.role, ack.asked_utc, ack.answered_utc,
                           rel(ack.asked), rel(ack.answered), round(ack.took, 3), ack.effect)


def crew(operators: list[Operator], interactive: bool) -> Crew:
    """The crew of a run: at the terminal when `interactive` (and one can be opened), else
    automated, with the reason."""
    if not interactive:
        why = ("no --operator named" if not operators else
               "no terminal on stdin (e.g. CI)")
        return Crew(operators, None, why)
    try:
        return Crew(operators, Console.open_tty())
    except OSError as exc:
        return Crew(operators, None, f"the terminal could not be opened ({exc})")
