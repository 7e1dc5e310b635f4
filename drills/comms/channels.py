"""Where notifications go, and how the drill sees that they arrived.

    Channel               the protocol: open, send a message, collect what arrived, close
    SnsChannel            publish to an SNS topic (the twin's own, or the team's on an
                          account); a queue of the drill's own, subscribed to the topic,
                          reads each message back as subscribers receive it
    SlackWebhookChannel   POST {"text": ...} to a Slack incoming webhook; Slack's answer
                          ("ok", HTTP 200) is the receipt: a webhook cannot be read back

`open_channel` builds the one `[comms]` configures. A webhook URL is a credential: it is read
from the environment and never named in the evidence (only its host is).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from drills.clients import Clients
from drills.comms.templates import Message
from drills.config import CommsSettings
from drills.errors import CommsError, ConfigError
from drills.evidence.fmt import utc_text
from drills.journal import utc_now
from drills.procedures.topic_queue import TopicQueue

WEBHOOK_TIMEOUT = 10.0  # seconds for the webhook to answer one POST


@dataclass(frozen=True, slots=True)
class Sent:
    """A message as handed to the channel: its id there, and when the hand-over returned."""

    message: Message
    message_id: str
    sent_utc: str
    sent_at: float  # monotonic


@dataclass(frozen=True, slots=True)
class Received:
    """A message as it arrived: when, its text as the receiver got it, and the receipt."""

    message_id: str
    delivered_utc: str
    text: str
    receipt: str


class Channel(Protocol):
    """A way to reach people with a notification, and to see that it arrived."""

    @property
    def description(self) -> str:
        """The channel in the evidence's words (no credential)."""

    def open(self) -> None:
        """Get ready to send and to read back."""

    def send(self, message: Message) -> Sent:
        """Hand `message` over; CommsError when the channel refuses it."""

    def received(self, sent: Sequence[Sent], timeout: float) -> list[Received]:
        """What of `sent` has arrived, waiting up to `timeout` seconds for the rest."""

    def close(self) -> None:
        """Remove what `open` made (idempotent)."""


class SnsChannel:
    """An SNS topic; each message is read back from a queue of the drill's own that the
    topic delivers to, as any subscriber of the team's would receive it."""

    def __init__(self, clients: Clients, region: str, topic_arn: str) -> None:
        self.clients, self.region, self.topic_arn = clients, region, topic_arn
        self.queue = TopicQueue(clients, region, [topic_arn], "drills-comms-watch")
        self._arrived: dict[str, Received] = {}

    @property
    def description(self) -> str:
        return f"SNS topic {self.topic_arn}, read back through an SQS queue subscribed to it"

    def open(self) -> None:
        self.queue.open()

    def send(self, message: Message) -> Sent:
        attributes = {"incident": message.fields[0][1], "kind": message.kind.value,
                      "sequence": str(message.sequence)}
        try:
            answer = self.clients("sns", self.region).publish(
                TopicArn=self.topic_arn, Subject=message.subject, Message=message.text,
                MessageAttributes={k: {"DataType": "String", "StringValue": v}
                                   for k, v in attributes.items()})
        except Exception as exc:  # botocore's errors: translated at this one boundary
            raise CommsError(f"SNS refused the {message.kind.value} notification on "
                             f"{self.topic_arn} ({type(exc).__name__}: {exc}); check the "
                             "topic exists and the credentials may publish to it") from exc
        return Sent(message, str(answer["MessageId"]), utc_now(), time.monotonic())

    def received(self, sent: Sequence[Sent], timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        wanted = {s.message_id for s in sent}
        while not wanted <= set(self._arrived) and time.monotonic() < deadline:
            for delivery in self.queue.receive(wait=1):
                self._arrived[delivery.message_id] = Received(
                    delivery.message_id, utc_text(delivery.delivered), delivery.message,
                    f"SQS queue subscribed to the topic (SNS message {delivery.message_id})")
        return [self._arrived[s.message_id] for s in sent if s.message_id in self._arrived]

    def close(self) -> None:
        self.queue.close()


def slack_escape(text: str) -> str:
    """Slack reads &, < and > as markup (`<!channel>` notifies everyone): its message
    formatting reference asks that they be escaped as HTML entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackWebhookChannel:
    """A Slack incoming webhook: POST {"text": ...}; its answer is the receipt."""

    def __init__(self, url: str, source: str) -> None:
        self.url, self.source = url, source
        self._answers: dict[str, Received] = {}
        self._client: httpx.Client | None = None

    @property
    def description(self) -> str:
        host = urlsplit(self.url).netloc.rsplit("@", 1)[-1]
        return (f"Slack incoming webhook on {host} (URL from {self.source}, not recorded); "
                "the webhook's answer is the receipt")

    def open(self) -> None:
        self._client = httpx.Client(timeout=WEBHOOK_TIMEOUT)

    def send(self, message: Message) -> Sent:
        if self._client is None:
            self.open()
        assert self._client is not None
        text = slack_escape(message.text)
        try:
            answer = self._client.post(self.url, json={"text": text})
        except httpx.HTTPError as exc:
            raise CommsError(f"the Slack webhook on {urlsplit(self.url).hostname} did not take "
                             f"the {message.kind.value} notification ({type(exc).__name__}); "
                             "check the URL in " + self.source) from None
        if not answer.is_success:
            raise CommsError(f"the Slack webhook on {urlsplit(self.url).hostname} answered HTTP "
                             f"{answer.status_code} {answer.text[:60]!r} to the "
                             f"{message.kind.value} notification; check the URL in "
                             f"{self.source} (a revoked webhook answers 404 or 410)")
        message_id = f"webhook-{message.sequence}-{uuid.uuid4().hex[:8]}"
        now = utc_now()
        self._answers[message_id] = Received(
            message_id, now, text, f"HTTP {answer.status_code} {answer.text[:40]!r}")
        return Sent(message, message_id, now, time.monotonic())

    def received(self, sent: Sequence[Sent], timeout: float) -> list[Received]:
        return [self._answers[s.message_id] for s in sent if s.message_id in self._answers]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def open_channel(settings: CommsSettings, clients: Clients, region: str,
                 own_topic: str | None) -> Channel:
    """The channel `[comms]` configures, opened. `own_topic`: the topic a twin provides when
    none is configured (None on an account, which must name the team's)."""
    if settings.channel == "slack":
        url = os.environ.get(settings.webhook_env, "").strip()
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"[comms] channel = \"slack\" reads the incoming-webhook URL from "
                              f"${settings.webhook_env}, which is "
                              f"{'not a URL' if url else 'not set'}; export it (the URL is a "
                              "credential: keep it out of files)")
        channel: Channel = SlackWebhookChannel(url, f"${settings.webhook_env}")
    else:
        topic = settings.topic_arn or own_topic
        if topic is None:
            raise ConfigError("[comms] topic_arn is not set: on an account the notifications "
                              "go to the team's SNS topic; set it, or channel = \"slack\"")
        channel = SnsChannel(clients, region, topic)
    channel.open()
    return channel
