"""An SQS queue of the drill's own, subscribed to SNS topics: how a drill sees what a topic
delivers (the pager's alarm notifications, the incident's user notifications) without
touching the team's own subscribers.

SNS delivers to an SQS subscriber a JSON envelope (`Type`, `MessageId`, `TopicArn`,
`Subject`, `Message`, `Timestamp`, `MessageAttributes`) unless raw delivery is on
(https://docs.aws.amazon.com/sns/latest/dg/SendMessageToSQS.html); the queue's
`SentTimestamp` is when SNS put it there. moto delivers the same in server mode (one process
holds both services): `tests/procedures/test_topic_queue.py` checks it.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drills.clients import Clients


@dataclass(frozen=True, slots=True)
class Delivery:
    """One SNS notification as the queue received it."""

    envelope: dict[str, Any]  # the SNS JSON envelope
    delivered: datetime  # SQS SentTimestamp: when SNS put it into the queue

    @property
    def message_id(self) -> str:
        return str(self.envelope.get("MessageId", ""))

    @property
    def message(self) -> str:
        return str(self.envelope.get("Message", ""))


class TopicQueue:
    """Create (`open`), read (`receive`) and remove (`close`) a queue subscribed to topics."""

    def __init__(self, clients: Clients, region: str, topics: list[str], prefix: str) -> None:
        self.clients, self.region, self.topics, self.prefix = clients, region, topics, prefix
        self.queue_url: str | None = None
        self.subscriptions: list[str] = []

    def open(self) -> TopicQueue:
        """Create the queue, allow the topics (and only them) to send to it, subscribe it."""
        sqs, sns = self.clients("sqs", self.region), self.clients("sns", self.region)
        self.queue_url = sqs.create_queue(
            QueueName=f"{self.prefix}-{secrets.token_hex(4)}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        sqs.set_queue_attributes(QueueUrl=self.queue_url, Attributes={"Policy": json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage", "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": self.topics}}}]})})
        for topic in self.topics:
            self.subscriptions.append(sns.subscribe(
                TopicArn=topic, Protocol="sqs", Endpoint=arn,
                ReturnSubscriptionArn=True)["SubscriptionArn"])
        return self

    def receive(self, wait: int = 1) -> list[Delivery]:
        """What arrived (long-polling up to `wait` seconds), deleted from the queue; messages
        that are not SNS envelopes are dropped."""
        sqs = self.clients("sqs", self.region)
        got = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                  WaitTimeSeconds=wait, AttributeNames=["SentTimestamp"])
        out = []
        for message in got.get("Messages", []):
            sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            try:
                envelope = json.loads(message["Body"])
            except ValueError:
                continue
            if not isinstance(envelope, dict) or "Message" not in envelope:
                continue
            sent = int(message["Attributes"]["SentTimestamp"]) / 1000
            out.append(Delivery(envelope, datetime.fromtimestamp(sent, UTC)))
        return out

    def close(self) -> None:
        """Unsubscribe and delete the queue (idempotent)."""
        sns, sqs = self.clients("sns", self.region), self.clients("sqs", self.region)
        for arn in self.subscriptions:
            sns.unsubscribe(SubscriptionArn=arn)
        self.subscriptions.clear()
        if self.queue_url is not None:
            sqs.delete_queue(QueueUrl=self.queue_url)
            self.queue_url = None
