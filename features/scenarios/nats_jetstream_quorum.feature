@scenario @nats @full_outage
Feature: JetStream loses its quorum
  Runbook 4.2 step 3 "If cluster cannot form quorum": an R3 stream needs 2 of its 3
  replicas to acknowledge a write, so with NATS down on 2 of 3 instances JetStream writes
  stop; they resume once one of them returns. The drill publishes to a stream of its own
  (VETTID_DRILL) and counts only acknowledged publishes. The vault service itself uses
  core request/reply, which the surviving node keeps serving: both are measured.

  Scenario: NATS crashes on two of three instances; JetStream writes resume when one returns
    Given the NATS cluster is whole
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And a JetStream canary publishes acknowledged messages to an R3 stream
    When the NATS server crashes on 2 instances
    Then JetStream writes stop
    When the operator restarts NATS via SSM on 1 instance where it is down
    Then JetStream writes recover within the "NATS Cluster" objective
    And no acknowledged JetStream message is lost (the "NATS Cluster" RPO objective)
    And vault operations are stable again within the "NATS Cluster" objective
    And no acknowledged vault write is lost (the "NATS Cluster" RPO objective)
