"""One incident's communications: declared, notified, updated at a cadence, resolved.

`Communications` sends each notification through a channel and records it in the drill's
evidence (`CommsRecord`) as it goes, with the figures runbook 7.3 asks to test: the time from
the declaration to the first notification's arrival, and the intervals between notifications
against the cadence promised to users (`[comms] update_every`; the appendix promises none).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise

from drills.comms import templates
from drills.comms.channels import Channel, Sent, slack_escape
from drills.comms.templates import Incident, Message
from drills.errors import CommsError
from drills.evidence.fmt import parse_utc, secs, utc_text
from drills.evidence.model import CommsRecord, NotificationRecord
from drills.journal import utc_now

Notify = Callable[[NotificationRecord], None]


class Communications:
    """The notifications of one incident through one channel (thread-safe: updates go out
    from a thread of their own while the drill's steps run)."""

    def __init__(self, channel: Channel, incident: Incident, declared_at: float,
                 promised: float | None, notify: Notify) -> None:
        self.channel, self.incident, self.declared_at = channel, incident, declared_at
        self.notify = notify
        self.record = CommsRecord(channel.description, incident.incident_id,
                                  incident.declared_utc, incident.started_utc, incident.impact,
                                  incident.eta_utc, promised_cadence=promised)
        self._sent: list[Sent] = []
        self._lock = threading.Lock()
        self._sending = threading.Lock()  # one notification at a time, in order
        self._stop = threading.Event()
        self._updater: threading.Thread | None = None
        self._updates = 0
        self._error: BaseException | None = None
        self._pending: list[NotificationRecord] = []  # sent, not yet told to `notify`

    @classmethod
    def declare(cls, channel: Channel, *, started_utc: str | None, impact: str,
                eta_seconds: float, eta_basis: str, promised: float | None,
                notify: Notify) -> Communications:
        """Declare the incident now (`started_utc`: when the service was first affected,
        None: now), with its ETA `eta_seconds` after the start."""
        declared_at, declared_utc = time.monotonic(), utc_now()
        start = started_utc or declared_utc
        eta = utc_text(parse_utc(start) + timedelta(seconds=eta_seconds))
        incident = Incident(f"INC-{declared_utc[:10].replace('-', '')}-"
                            f"{uuid.uuid4().hex[:6].upper()}", start, declared_utc, impact, eta,
                            eta_basis)
        return cls(channel, incident, declared_at, promised, notify)

    # -- sending ------------------------------------------------------------------------------
    def send(self, message: Message) -> NotificationRecord:
        """Hand `message` to the channel and record it (CommsError if the channel refuses)."""
        with self._sending:
            sent = self.channel.send(message)
            record = NotificationRecord(
                message.kind.value, message.sequence, message.template.value, message.subject,
                message.text, sent.sent_utc, round(sent.sent_at - self.declared_at, 3),
                message_id=sent.message_id)
            with self._lock:
                self._sent.append(sent)
                self.record.notifications.append(record)
                self._pending.append(record)
                self._refresh()
        if threading.current_thread() is not self._updater:
            self.flush()
        return record

    def flush(self) -> None:
        """Tell `notify` of what was sent since; only from the drill's own thread (observers
        write to the terminal), so the updates' thread leaves it to the steps."""
        with self._lock:
            pending, self._pending = self._pending, []
        for record in pending:
            self.notify(record)

    def send_initial(self) -> NotificationRecord:
        """The initial notification (the appendix's "Service Degraded")."""
        return self.send(templates.initial(self.incident))

    @property
    def next_sequence(self) -> int:
        with self._lock:
            return len(self._sent) + 1

    def start_updates(self, every: float, impact: Callable[[], str]) -> None:
        """Send an update every `every` seconds from now until `stop_updates`; each states
        the impact as `impact()` reads it then."""
        if self._updater is not None:
            raise CommsError("updates are already being sent for this incident; one 'When an "
                             "update is sent every ...' step per incident")
        self.record.update_every = every

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    number = self._updates + 1
                    self.send(templates.update(
                        self.incident, self.next_sequence, number, impact(),
                        utc_text(parse_utc(utc_now()) + timedelta(seconds=every))))
                    self._updates = number
                except BaseException as exc:  # handed to the step that stops the updates
                    self._error = exc
                    return

        self._updater = threading.Thread(target=loop, name="drills-comms-updates", daemon=True)
        self._updater.start()

    @property
    def updates_sent(self) -> int:
        return self._updates

    def wait_for_updates(self, count: int, timeout: float) -> None:
        """Block until `count` updates have gone out; CommsError after `timeout` seconds or
        when sending one failed."""
        deadline = time.monotonic() + timeout
        while self._updates < count:
            self.flush()
            if self._error is not None:
                self.stop_updates()
            if self._updater is None or time.monotonic() > deadline:
                raise CommsError(f"{self._updates} of {count} updates went out in "
                                 f"{timeout:g}s; is an update step before this one?")
            self._stop.wait(0.05)

    def stop_updates(self) -> None:
        """Stop sending updates; re-raise what stopped them early, if anything did."""
        self._stop.set()
        if self._updater is not None:
            self._updater.join(timeout=60)
        self.flush()
        error, self._error = self._error, None
        if error is not None:
            raise CommsError(f"an update could not be sent: {error}") from error

    def resolve(self, rto: float, rto_basis: str) -> NotificationRecord:
        """Stop the updates and send the resolution (the appendix's "Service Restored")
        with the actual RTO."""
        self.stop_updates()
        return self.send(templates.resolution(self.incident, self.next_sequence, utc_now(),
                                              rto, rto_basis))

    # -- arrival and figures --------------------------------------------------------------------
    def confirm(self, timeout: float) -> list[str]:
        """Wait up to `timeout` s for every notification to arrive; record arrival times and
        texts; return what is wrong (missing, or arrived different from what was sent)."""
        self.flush()
        with self._lock:
            sent = list(self._sent)
        arrived = {r.message_id: r for r in self.channel.received(sent, timeout)}
        problems = []
        with self._lock:
            for notification in self.record.notifications:
                got = arrived.get(notification.message_id)
                if got is None:
                    problems.append(f"{notification.kind} #{notification.sequence} did not "
                                    f"arrive within {secs(timeout)}")
                    continue
                notification.delivered_utc, notification.receipt = got.delivered_utc, got.receipt
                notification.received_text = got.text
                notification.delivered_after = round((parse_utc(got.delivered_utc) - parse_utc(
                    self.incident.declared_utc)).total_seconds(), 3)
                if got.text != notification.text and got.text != slack_escape(notification.text):
                    problems.append(f"{notification.kind} #{notification.sequence} arrived "
                                    "different from what was sent")
            self._refresh()
        return problems

    def _refresh(self) -> None:
        """The figures from the notifications so far (under the lock)."""
        sent = self.record.notifications
        if not sent:
            return
        moments = [n.delivered_after if n.delivered_after is not None else n.after_declaration
                   for n in sent]
        self.record.first_notification = sent[0].delivered_after
        self.record.intervals = [round(b - a, 3) for a, b in pairwise(moments)]
        self.record.longest_interval = max(self.record.intervals, default=None)
        promised = self.record.promised_cadence
        self.record.cadence_met = (None if promised is None or not self.record.intervals
                                   else self.record.longest_interval <= promised)  # type: ignore[operator]

    def close(self) -> None:
        """Stop the updates (errors are the steps' to report) and close the channel."""
        self._stop.set()
        if self._updater is not None:
            self._updater.join(timeout=60)
        self.channel.close()
