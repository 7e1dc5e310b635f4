@annual @region @full_outage
Feature: Annual full DR exercise with the on-call team
  Runbook 7.3, with people in it: a complete regional failover, operation in the DR region
  (4-hour operation; `--soak` sets how long, and a shorter soak is a rehearsal of it), on-call
  team participation, and the objectives measured from the actual times. The incident is
  real: the primary region's enclave ASG loses every instance while a canary writes through
  api.vettid.dev. The alarm pages the on-call engineer; the escalation path acknowledges
  level by level (runbook appendix, L1 to L4); the incident commander declares a disaster
  and approves failover; the executor runs runbook 5.2 step 1 (the harness watches the DR
  ASG's desired capacity change) and the harness makes step 2; the executor confirms the
  smoke tests; the team operates in us-west-2 for the soak; the primary is repaired and the
  incident commander approves failback (runbook 5.3, the quarterly's order).

  Human steps prompt the operators at the terminal (`drills run annual --operator
  NAME:ROLE`) and record who acknowledged and when; without a terminal they are acknowledged
  automatically and marked automated. MTTR is measured as people experience it: detection
  (incident to page), response (page to L1's acknowledgement), diagnosis and decision (to
  the approval of failover), recovery (to the service's recovery as the apps see it), each
  on the phase timeline, the total against the MTTR objective.

  Scenario: The primary region loses its enclaves and the on-call team fails over to us-west-2, operates there and fails back
    Given the exercise's participants include the on-call team (runbook 7.3)
    And the DR prerequisites of runbook 5.2 hold
    And the "VettID-Enclave-NoInstances" alarm is OK
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the canary has made 10 acknowledged writes
    When the primary region loses every enclave (the exercise's incident)
    Then the "VettID-Enclave-NoInstances" alarm goes to ALARM within the "CloudWatch Monitoring" objective
    And the on-call engineer is paged for "VettID-Enclave-NoInstances" within the "CloudWatch Monitoring" objective
    And the escalation path acknowledges the page level by level (runbook appendix L1-L4)
    And the incident commander declares a disaster (human step)
    When the incident is declared and the initial notification is sent
    Then the first notification went out within 30s of the declaration
    And the incident commander approves failover to the DR region (human step)
    When the executor fails over to the DR region (runbook 5.2 steps 1-2)
    Then the DR region serves at desired capacity within the "Vault Service" objective
    And the DNS change is INSYNC within the "Vault Service" objective
    And the first enrolment through api.vettid.dev is served by the DR region within the "Vault Service" objective
    And vault operations recover within the "Vault Service" objective of the outage
    And the smoke tests pass in the DR region (runbook 7.2 item 4)
    And the executor confirms the smoke tests in the DR region (human step)
    And the time to recovery as people experienced it is within the MTTR objective
    When the service operates in the DR region for the soak (runbook 7.3 4-hour operation)
    Then no outage happened during the soak
    When the primary region is repaired (the incident's cause removed)
    And the incident commander approves failback (human step)
    And the operator fails back to the primary region (runbook 5.3)
    Then failback completes within the "Vault Service" objective
    And api.vettid.dev is served by the primary region again
    And no acknowledged vault write is lost, apart from writes a late replica buried in DR (the "Vault Service" RPO objective)
    When the resolution notification is sent with the actual RTO
    Then every notification arrived on the communication channel
