"""moto, in server mode, delivers what is published to an SNS topic to an SQS queue
subscribed to it, in the envelope AWS documents
(https://docs.aws.amazon.com/sns/latest/dg/SendMessageToSQS.html): the drills' pager and
communications read-back rest on it, so it is checked here rather than assumed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from drills.clients import Clients
from drills.procedures.topic_queue import Delivery, TopicQueue

REGION = "us-east-1"


def _receive_until(queue: TopicQueue, count: int, timeout: float) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += queue.receive(wait=1)
    return got


def test_a_publish_arrives_in_the_sns_envelope_with_its_send_time(clients: Clients) -> None:
    """Type, MessageId (the one publish returned), TopicArn, Subject, Message and the
    message attributes arrive; SentTimestamp lies between the publish and now."""
    topic = clients("sns").create_topic(Name="drills-test-comms")["TopicArn"]
    queue = TopicQueue(clients, REGION, [topic], "drills-test").open()
    try:
        before = datetime.now(UTC) - timedelta(seconds=1)
        published = clients("sns").publish(
            TopicArn=topic, Subject="Service degraded", Message="line one\nline two",
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "initial"}})
        (delivery,) = _receive_until(queue, 1, 10.0)
        envelope: dict[str, Any] = delivery.envelope
        assert envelope["Type"] == "Notification"
        assert delivery.message_id == published["MessageId"]
        assert (envelope["TopicArn"], envelope["Subject"]) == (topic, "Service degraded")
        assert delivery.message == "line one\nline two"
        assert envelope["MessageAttributes"]["kind"]["Value"] == "initial"
        assert before <= delivery.delivered <= datetime.now(UTC) + timedelta(seconds=1)
    finally:
        queue.close()


def test_the_queue_takes_only_its_topics_and_close_removes_it(clients: Clients) -> None:
    """Another topic's message does not arrive; close() unsubscribes and deletes the queue
    (twice is harmless)."""
    mine = clients("sns").create_topic(Name="drills-test-mine")["TopicArn"]
    other = clients("sns").create_topic(Name="drills-test-other")["TopicArn"]
    queue = TopicQueue(clients, REGION, [mine], "drills-test").open()
    url = queue.queue_url
    clients("sns").publish(TopicArn=other, Message="not for us")
    clients("sns").publish(TopicArn=mine, Message="for us")
    got = _receive_until(queue, 1, 10.0)
    assert [d.message for d in got + queue.receive(wait=1)] == ["for us"]
    queue.close()
    queue.close()
    assert clients("sns").list_subscriptions_by_topic(TopicArn=mine)["Subscriptions"] == []
    assert url not in clients("sqs").list_queues().get("QueueUrls", [])
