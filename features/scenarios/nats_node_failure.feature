@scenario @nats
Feature: One NATS node fails
  Runbook 3.3: the NATS cluster runs three nodes, so one failed node must not stop vault
  operations. Clients of a crashed node notice at once and reconnect to another; clients
  of a frozen node notice only when their pings go unanswered, and the other servers keep
  routing part of the requests to it until its routes time out. Each drill measures the
  service until it is stable again, against the NATS Cluster objective (5 minutes).

  Scenario: The NATS server crashes on one instance; the others keep serving
    Given the NATS cluster is whole
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    When the NATS server crashes on 1 instance
    Then vault operations are stable again within the "NATS Cluster" objective
    When the operator restarts NATS via SSM on 1 instance where it is down
    Then the NATS cluster is whole again within the "NATS Cluster" objective
    And no acknowledged vault write is lost (the "NATS Cluster" RPO objective)

  Scenario: The NATS server freezes on one instance
    Given the NATS cluster is whole
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    When the NATS server freezes on 1 instance
    Then vault operations are stable again within the "NATS Cluster" objective
    And no acknowledged vault write is lost (the "NATS Cluster" RPO objective)
