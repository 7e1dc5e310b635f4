@quarterly @region
Feature: Quarterly failover to the DR region and back
  Runbook 7.2, walked item by item with the procedures of 5.2 (failover) and 5.3 (failback):
  the maintenance window and the user notification (appendix template), the 5.2
  pre-requisites, failover with the runbook's own commands (the DR ASG to 2, the DNS change,
  the enrolment test against api-dr.vettid.dev), smoke tests in the DR region, failback
  including the reverse sync of what was written in DR, and the issues as findings. A canary
  writes through api.vettid.dev, resolved as the apps resolve it, for the whole exercise:
  every write acknowledged in either region must be in the primary after failback. 5.2 does
  not stop the primary's writes: until the apps' cached answers expire both regions take
  writes, and a replica from the primary that reaches the DR bucket after DR's own newer
  write becomes current over it. Such a loss is found in the DR bucket, measured, and
  recorded as a finding against 5.2; any other loss fails the drill.

  Each phase is on the report's timeline from the start of failover: decide, DR capacity
  ready, DNS INSYNC, first enrolment through api.vettid.dev served in DR, failback complete.

  Scenario: Planned failover to us-west-2 and failback to us-east-1
    Given the maintenance window is scheduled and users are notified (runbook 7.2 items 1-2)
    And the DR prerequisites of runbook 5.2 hold
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the canary has made 10 acknowledged writes
    When the operator fails over to the DR region (runbook 5.2 steps 1-2)
    Then the DR region serves at desired capacity within the "Vault Service" objective
    And the DNS change is INSYNC within the "Vault Service" objective
    And the runbook's enrolment test answers from api-dr.vettid.dev (runbook 5.2 step 3)
    And the first enrolment through api.vettid.dev is served by the DR region within the "Vault Service" objective
    And the smoke tests pass in the DR region (runbook 7.2 item 4)
    When the operator fails back to the primary region (runbook 5.3)
    Then failback completes within the "Vault Service" objective
    And api.vettid.dev is served by the primary region again
    And no acknowledged vault write is lost, apart from writes a late replica buried in DR (the "Vault Service" RPO objective)
    And the exercise's issues are recorded as findings (runbook 7.2 item 6)
