"""Human steps (`drills.human`): operators parsed, steps acknowledged at a real pseudo-
terminal (the console reads and writes its own tty, as `/dev/tty` is for a run), watched
commands timed to their effect, and automated acknowledgements without a terminal."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from drills.errors import ConfigError, HumanDeclined
from drills.human import Console, Crew, HumanStep, Mode, Operator, Role, crew, record

STEP = HumanStep("approve-failover", "approve failover", Role.INCIDENT_COMMANDER, "5.2",
                 "Failover: 1. activate the DR region.", "aws autoscaling set-desired-capacity")


class Terminal:
    """A pseudo-terminal: the console on its slave side, a person typing on its master."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        self.console = Console(os.fdopen(slave, "r", encoding="utf-8"),
                               os.fdopen(os.dup(slave), "w", encoding="utf-8"))
        self.shown = ""

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def read_until(self, text: str, timeout: float = 5.0) -> str:
        """What the console printed, once it holds `text` (fails after `timeout`)."""
        deadline = time.monotonic() + timeout
        while text not in self.shown:
            assert time.monotonic() < deadline, f"{text!r} never shown; got {self.shown!r}"
            import select
            if select.select([self.master], [], [], 0.1)[0]:
                self.shown += os.read(self.master, 4096).decode()
        return self.shown

    def close(self) -> None:
        self.console.close()
        os.close(self.master)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal()
    yield term
    term.close()


def _answer(terminal: Terminal, after: str, text: str, delay: float = 0.0) -> threading.Thread:
    """A person who waits for `after` on the screen, then `delay`, then types `text`."""
    def person() -> None:
        terminal.read_until(after)
        time.sleep(delay)
        terminal.type(text)

    thread = threading.Thread(target=person, daemon=True)
    thread.start()
    return thread


def test_an_operator_is_name_and_a_known_role() -> None:
    """NAME:ROLE with a role of the exercise; anything else says what to write."""
    assert Operator.parse("Dana:incident-commander") == Operator("Dana",
                                                                 Role.INCIDENT_COMMANDER)
    assert Operator.parse(" Lee : On-Call-L1 ").role is Role.L1
    with pytest.raises(ConfigError, match="write NAME:ROLE"):
        Operator.parse("Dana")
    with pytest.raises(ConfigError, match="unknown role 'captain'; roles: executor"):
        Operator.parse("Dana:captain")


def test_enter_acknowledges_as_the_operator_of_the_role_and_is_timed(
        terminal: Terminal) -> None:
    """The prompt shows the runbook text and the command; Enter acknowledges as the
    operator who plays the step's role; the time from prompt to answer is recorded."""
    people = [Operator("Lee", Role.EXECUTOR), Operator("Dana", Role.INCIDENT_COMMANDER)]
    person = _answer(terminal, "> ", "\n", delay=0.3)
    ack = Crew(people, terminal.console).acknowledge(STEP)
    person.join(5)
    shown = terminal.read_until("acknowledged by")
    assert "approve failover (incident-commander, runbook 5.2)" in shown
    assert "Failover: 1. activate the DR region." in shown
    assert "aws autoscaling set-desired-capacity" in shown
    assert (ack.by, ack.role, ack.mode) == ("Dana", "incident-commander", Mode.INTERACTIVE)
    assert 0.3 <= ack.took < 5.0
    assert ack.answered_utc > ack.asked_utc


def test_a_typed_name_is_who_acknowledged(terminal: Terminal) -> None:
    """Typing a name records that person (with their role when they are an operator)."""
    people = [Operator("Lee", Role.EXECUTOR), Operator("Dana", Role.INCIDENT_COMMANDER)]
    _answer(terminal, "> ", "lee\n")
    ack = Crew(people, terminal.console).acknowledge(STEP)
    assert (ack.by, ack.role) == ("Lee", "executor")
    _answer(terminal, "after", "Sam\n")
    other = Crew(people, terminal.console).acknowledge(STEP)
    assert (other.by, other.role) == ("Sam", "incident-commander")


def test_abort_stops_the_exercise(terminal: Terminal) -> None:
    """'abort' refuses the step: HumanDeclined, which stops the drill (faults reverted)."""
    _answer(terminal, "> ", "abort\n")
    with pytest.raises(HumanDeclined, match="approve failover was refused"):
        Crew([], terminal.console).acknowledge(STEP)


def test_a_watched_command_is_timed_to_its_effect(terminal: Terminal) -> None:
    """The person runs the command themselves: the step ends when the effect shows, without
    an answer, timed from the prompt to the poll that saw it."""
    done_at: list[float] = []

    def effect() -> str | None:
        return None if done_at and time.monotonic() >= done_at[0] else "desired capacity 0"

    def person() -> None:
        terminal.read_until("watches for the effect")
        done_at.append(time.monotonic() + 0.5)  # "runs the command"

    threading.Thread(target=person, daemon=True).start()
    ack = Crew([Operator("Lee", Role.EXECUTOR)], terminal.console).await_effect(
        STEP, effect, timeout=10, poll=0.05)
    assert (ack.by, ack.mode, ack.effect) == ("Lee", Mode.INTERACTIVE, "effect seen")
    assert 0.5 <= ack.took < 5.0
    assert "effect seen after" in terminal.read_until("recorded as run by Lee")


def test_a_watched_command_without_effect_in_time_stops_the_exercise(
        terminal: Terminal) -> None:
    """No effect by the deadline: HumanDeclined, saying what was seen instead."""
    with pytest.raises(HumanDeclined, match=r"no effect within 0.3s .*desired capacity 0"):
        Crew([], terminal.console).await_effect(STEP, lambda: "desired capacity 0",
                                                timeout=0.3, poll=0.05)


def test_without_a_terminal_steps_are_acknowledged_at_once_and_marked_automated() -> None:
    """No console: acknowledged by the harness, mode automated, with the reason kept."""
    people = [Operator("Dana", Role.INCIDENT_COMMANDER)]
    automated = crew(people, interactive=False)
    assert automated.mode is Mode.AUTOMATED
    assert automated.why_automated == "no terminal on stdin (e.g. CI)"
    assert crew([], interactive=False).why_automated == "no --operator named"
    ack = automated.acknowledge(STEP)
    watched = automated.await_effect(STEP, lambda: "never", timeout=0.1)
    assert (ack.mode, ack.by) == (Mode.AUTOMATED, "drills (automated)")
    assert ack.took < 0.1
    assert watched.effect == "run by the harness"
    evidence = record(ack, origin=ack.asked - 2.0)
    assert evidence.mode == "automated"
    assert evidence.asked_at == pytest.approx(2.0, abs=0.01)
    assert record(ack, origin=ack.answered + 1).asked_at is None  # before the first fault
