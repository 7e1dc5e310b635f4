"""The channels on real backends: SNS on the moto server (read back through a queue), a Slack
incoming webhook played by a real HTTP server on loopback; and `open_channel`'s refusals."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from drills.clients import Clients
from drills.comms import templates
from drills.comms.channels import SlackWebhookChannel, SnsChannel, open_channel
from drills.comms.templates import Incident
from drills.config import CommsSettings
from drills.errors import CommsError, ConfigError

REGION = "us-east-1"
INCIDENT = Incident("INC-1", "2026-12-02T08:00:00.000Z", "2026-12-02T08:00:01.000Z",
                    "reads fail <sometimes> & writes queue", "2026-12-02T08:15:00.000Z",
                    "the Vault Service RTO objective")


@dataclass
class Webhook:
    """A loopback HTTP server answering as Slack's incoming webhooks do ("ok"), recording
    each request; `status` makes it answer otherwise."""

    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.posts.append(json.loads(body))
            hook.content_types.append(self.headers["Content-Type"])
            answer = b"ok" if hook.status == 200 else b"no_service"
            self.send_response(hook.status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/s3cr3tPath"
    yield hook
    server.shutdown()
    server.server_close()


def test_sns_channel_reads_back_each_message_as_sent(clients: Clients) -> None:
    """Two messages published to the topic arrive on the drill's queue, each with its
    MessageId, its text unchanged and its delivery time; close() removes the queue."""
    topic = clients("sns").create_topic(Name="drills-test-channel")["TopicArn"]
    channel = SnsChannel(clients, REGION, topic)
    channel.open()
    try:
        first = channel.send(templates.initial(INCIDENT))
        last = channel.send(templates.resolution(INCIDENT, 2, "2026-12-02T08:05:00.000Z", 240.0,
                                                 "measured"))
        got = channel.received([first, last], timeout=10.0)
        assert [g.message_id for g in got] == [first.message_id, last.message_id]
        assert [g.text for g in got] == [first.message.text, last.message.text]
        assert all(g.delivered_utc >= "2026" for g in got)
        assert topic in channel.description
    finally:
        channel.close()
    assert channel.queue.queue_url is None


def test_sns_channel_names_the_topic_when_publishing_fails(clients: Clients) -> None:
    """A topic that does not exist: CommsError naming it and what to check."""
    channel = SnsChannel(clients, REGION, "arn:aws:sns:us-east-1:123456789012:no-such-topic")
    with pytest.raises(CommsError, match=r"no-such-topic.*check the topic exists"):
        channel.send(templates.initial(INCIDENT))


def test_slack_channel_posts_text_json_escaped_as_slack_asks(webhook: Webhook) -> None:
    """One POST per message, JSON {"text": ...} with &, < and > escaped; the webhook's "ok"
    is the receipt; the URL's secret path is never in the channel's description."""
    channel = SlackWebhookChannel(webhook.url, "$TEAM_HOOK")
    channel.open()
    try:
        sent = channel.send(templates.initial(INCIDENT))
    finally:
        channel.close()
    (post,) = webhook.posts
    assert list(post) == ["text"]
    assert "reads fail &lt;sometimes&gt; &amp; writes queue" in post["text"]
    assert post["text"].endswith(templates.TEXT[templates.Template.SERVICE_DEGRADED])
    assert webhook.content_types == ["application/json"]
    (got,) = channel.received([sent], timeout=0)
    assert got.text == post["text"]
    assert got.receipt == "HTTP 200 'ok'"
    assert "s3cr3tPath" not in channel.description
    assert "$TEAM_HOOK" in channel.description


def test_slack_channel_refusal_is_a_comms_error_without_the_url(webhook: Webhook) -> None:
    """A revoked webhook (HTTP 404 no_service): CommsError with the status, not the URL."""
    webhook.status = 404
    channel = SlackWebhookChannel(webhook.url, "$TEAM_HOOK")
    with pytest.raises(CommsError, match="answered HTTP 404 'no_service'") as info:
        channel.send(templates.initial(INCIDENT))
    assert "s3cr3tPath" not in str(info.value)
    channel.close()


def test_open_channel_refuses_what_cannot_work(clients: Clients,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack without its URL in the environment, and SNS on an account without the team's
    topic, are ConfigErrors saying what to set; with the URL set a Slack channel opens."""
    monkeypatch.delenv("TEAM_HOOK", raising=False)
    slack = CommsSettings(channel="slack", webhook_env="TEAM_HOOK")
    with pytest.raises(ConfigError, match=r"\$TEAM_HOOK, which is not set; export it"):
        open_channel(slack, clients, REGION, None)
    with pytest.raises(ConfigError, match=r"\[comms\] topic_arn is not set"):
        open_channel(CommsSettings(), clients, REGION, None)
    monkeypatch.setenv("TEAM_HOOK", "https://hooks.slack.example/services/x")
    channel = open_channel(slack, clients, REGION, None)
    assert isinstance(channel, SlackWebhookChannel)
    channel.close()
