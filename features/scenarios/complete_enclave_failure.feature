@scenario @enclave @full_outage
Feature: All enclave instances down
  Runbook 3.2 and 4.1: with every enclave gone, vault operations fail with the NATS
  "no responders" symptom the runbook describes, and recovery must come within the Nitro
  Enclave ASG objective.

  Scenario: Every instance is terminated and the ASG brings the service back
    Given the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the canary has made 10 acknowledged writes
    When all enclave instances are terminated
    Then vault operations fail with "no-responders"
    And the enclave ASG returns to desired capacity within the "Nitro Enclave ASG" objective
    And vault operations recover within the "Nitro Enclave ASG" objective
    And no acknowledged vault write is lost (the "Nitro Enclave ASG" RPO objective)

  Scenario: Capacity forced to zero, recovered by runbook 4.1 step 4
    Given the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the canary has made 10 acknowledged writes
    When the enclave ASG desired capacity is set to 0
    Then vault operations fail with "no-responders"
    When the operator forces new instances (runbook 4.1 step 4)
    Then the enclave ASG returns to desired capacity within the "Nitro Enclave ASG" objective
    And vault operations recover within the "Nitro Enclave ASG" objective
    And no acknowledged vault write is lost (the "Nitro Enclave ASG" RPO objective)
