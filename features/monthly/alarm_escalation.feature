@monthly @monitoring @full_outage
Feature: Alarm escalation path
  Runbook 7.1 "Test alarm escalation path": the alarms runbook 3.2 and 3.3 name must fire
  when their condition holds, and their actions must page the on-call engineer. The drill
  causes each condition, measures the time from the fault to the alarm (its ALARM state
  change in the alarm history) and to the page (the notification delivered by the alarm's
  SNS topic), against the CloudWatch Monitoring objective, checks the alarm returns to OK
  after recovery, and records which escalation levels of the runbook appendix the outage
  engages (L1 on-call first response; L2 team lead for a P1 or after 30 min; L3 platform
  architect on data loss risk; L4 executive after a 1 hour user-facing outage).

  Scenario: No InService enclave instance raises VettID-Enclave-NoInstances and pages on-call
    Given the vault service is healthy
    And the "VettID-Enclave-NoInstances" alarm is OK
    And a canary writer makes acknowledged vault writes
    And the canary has made 10 acknowledged writes
    When the enclave ASG desired capacity is set to 0
    Then the "VettID-Enclave-NoInstances" alarm goes to ALARM within the "CloudWatch Monitoring" objective
    And the on-call engineer is paged for "VettID-Enclave-NoInstances" within the "CloudWatch Monitoring" objective
    When the operator forces new instances (runbook 4.1 step 4)
    Then the enclave ASG returns to desired capacity within the "Nitro Enclave ASG" objective
    And vault operations recover within the "Nitro Enclave ASG" objective
    And no acknowledged vault write is lost (the "Nitro Enclave ASG" RPO objective)
    And the "VettID-Enclave-NoInstances" alarm returns to OK
    And escalation follows the runbook appendix for a "Nitro Enclave ASG" outage

  Scenario: No healthy NATS node raises VettID-NATS-NoHealthyInstances and pages on-call
    Given the vault service is healthy
    And the "VettID-NATS-NoHealthyInstances" alarm is OK
    And a canary writer makes acknowledged vault writes
    And the canary has made 10 acknowledged writes
    When the NATS server crashes on every instance
    Then the "VettID-NATS-NoHealthyInstances" alarm goes to ALARM within the "CloudWatch Monitoring" objective
    And the on-call engineer is paged for "VettID-NATS-NoHealthyInstances" within the "CloudWatch Monitoring" objective
    When the operator restarts NATS on all instances via SSM (runbook 4.2 step 1)
    Then vault operations recover within the "NATS Cluster" objective
    And no acknowledged vault write is lost (the "NATS Cluster" RPO objective)
    And the "VettID-NATS-NoHealthyInstances" alarm returns to OK
    And escalation follows the runbook appendix for a "NATS Cluster" outage
