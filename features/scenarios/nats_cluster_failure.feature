@scenario @nats @full_outage
Feature: NATS cluster failure
  Runbook 3.3 and 4.2 step 1: with nats-server crashed on every instance even healthy
  enclaves cannot receive requests, so every vault operation fails. The operator restarts
  NATS on all instances through SSM Run Command, as the runbook prints it; enclave workers
  and clients reconnect by themselves. Recovery is measured against the NATS Cluster
  objective (5 minutes), and every acknowledged vault write must survive.

  Scenario: NATS crashes on every instance and is restarted through SSM
    Given the NATS cluster is whole
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the enclave workers are noted
    When the NATS server crashes on every instance
    Then vault operations fail with "timeout"
    When the operator restarts NATS on all instances via SSM (runbook 4.2 step 1)
    Then the NATS cluster is whole again within the "NATS Cluster" objective
    And vault operations are stable again within the "NATS Cluster" objective
    And the enclave workers reconnected by themselves (same processes, all serving)
    And no acknowledged vault write is lost (the "NATS Cluster" RPO objective)
