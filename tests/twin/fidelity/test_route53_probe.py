"""One Route 53 health checker's probe, as AWS documents it.

Route 53 Developer Guide, "How Amazon Route 53 determines whether a health check is healthy"
(dns-failover-determining-health-of-endpoints.html): "Route 53 must be able to establish a
TCP connection with the endpoint within four seconds. In addition, the endpoint must respond
with an HTTP status code of 2xx or 3xx within two seconds after connecting". The probes of a
running twin's checks (HTTPS, string matching, the Host header) are tested in
`test_route53.py`.
"""

from __future__ import annotations

import socket

from drills.twin.fidelity.route53_probe import Target, probe


def test_a_probe_reports_a_refused_connection_and_a_silent_endpoint() -> None:
    """No listener: "Connection refused"; a listener that never answers: a failure once the
    two seconds after connecting have passed."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        refused = probe(Target("HTTP", "127.0.0.1", None, port, "/health", None, False, "t"))
    assert not refused.ok
    assert refused.status.startswith("Failure: Connection refused.")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever answers
        quiet = probe(Target("HTTP", "127.0.0.1", None, silent.getsockname()[1], "/", None,
                             False, "t"))
    assert not quiet.ok
    assert quiet.status.startswith("Failure: Response timed out.")
