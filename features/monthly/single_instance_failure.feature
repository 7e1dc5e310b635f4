@monthly @enclave
Feature: Single enclave instance failure
  Runbook 7.1 "Simulate single instance failure and recovery" (scenario 3.1): with vault
  traffic flowing, one enclave instance is terminated. The other instance keeps serving and
  the Auto Scaling group replaces the lost one within the Nitro Enclave ASG objective. An
  enclave that crashes on a running instance is replaced too, because the group uses ELB
  health checks: its target group checks the enclave's own health endpoint (with EC2 checks
  only it would not be, see scenarios/enclave_health_check_type.feature).

  Scenario: One enclave instance is terminated and replaced by the ASG
    Given the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the canary has made 10 acknowledged writes
    When 1 enclave instance is terminated
    Then the enclave ASG returns to desired capacity within the "Nitro Enclave ASG" objective
    And vault operations recover within the "Nitro Enclave ASG" objective
    And no acknowledged vault write is lost (the "Nitro Enclave ASG" RPO objective)

  Scenario: The enclave process crashes and the ASG health check replaces the instance
    Given the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the canary has made 10 acknowledged writes
    When the enclave process crashes on 1 instance
    Then the enclave ASG returns to desired capacity within the "Nitro Enclave ASG" objective
    And the Auto Scaling group replaced the instance "in response to an ELB system health check failure"
    And vault operations recover within the "Nitro Enclave ASG" objective
    And no acknowledged vault write is lost (the "Nitro Enclave ASG" RPO objective)
