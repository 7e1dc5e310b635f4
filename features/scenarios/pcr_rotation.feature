@scenario @pcr @enclave @twin_only
Feature: PCR rotation (runbook 6)
  Apps trust an enclave only if its attestation document carries a PCR set of their
  expected_pcrs.json. A new enclave build changes PCR0 and PCR2, so the order of runbook 6.2
  matters: build, latest-ami, the apps' update (keeping the old set), then current-ami with an
  instance refresh at MinHealthyPercentage 50; 6.3 rolls a bad build back. Probes act as the
  app population and verify every answer's attestation, so the drills measure what apps feel:
  attestation refused per cohort, capacity during the rollout, RTO and RPO. Twin only: the
  drill builds enclave images, which on an account is the team's build pipeline.

  Scenario: Planned PCR rotation in the runbook's order (6.2)
    Given the PCR rotation is tracked
    And every app carries the PCR sets of builds "1.0.0"
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the canary has made 10 acknowledged writes
    When enclave build "2.0.0" is built (runbook 6.2 step 1)
    And latest-ami names build "2.0.0" (runbook 6.2 step 2)
    And every app gains the PCR set of build "2.0.0" (runbook 6.2 step 3)
    And current-ami names build "2.0.0" and an instance refresh rolls it out with MinHealthyPercentage 50 (runbook 6.2 step 4)
    Then the rollout completes within the "Nitro Enclave ASG" objective
    And serving capacity never fell below 50% of desired during the rollout
    And every enclave instance runs build "2.0.0"
    And no app was refused attestation (the "Nitro Enclave ASG" objective)
    And no acknowledged vault write is lost (the "Nitro Enclave ASG" RPO objective)

  @expected_breach
  Scenario: The new AMI is deployed before the apps carry its PCR set
    Runbook 6.2 step 3 says "Update mobile apps FIRST"; this is what happens when the AMI goes
    out first: every app still on the old set refuses every enclave of the new build until
    the AMI is rolled back (runbook 6.3). Fix: release the AMI only after the apps carrying
    the new set reach the adoption the team accepts, and measure that adoption (runbook 6.2
    step 3); rolling back restores service for everyone (runbook 6.3 step 2).
    Given the PCR rotation is tracked
    And every app carries the PCR sets of builds "1.0.0"
    And the vault service is healthy
    When enclave build "2.0.0" is built (runbook 6.2 step 1)
    And current-ami names build "2.0.0" and an instance refresh rolls it out with MinHealthyPercentage 50 (runbook 6.2 step 4)
    Then apps are refused attestation
    And the rollout completes within the "Nitro Enclave ASG" objective
    When the operator rolls back to the previous AMI (runbook 6.3 step 1)
    Then attested vault operations recover within the "Nitro Enclave ASG" objective, from the rollback
    And no app was refused attestation (the "Nitro Enclave ASG" objective)

  @expected_breach
  Scenario: At the runbook's 80 % adoption, the apps not yet updated lose the service
    Runbook 6.2 step 3 waits for "sufficient adoption (>80%)" before deploying: the apps still
    on the old version (here 20 %) accept only the old set and are refused by every new
    enclave. Fix: keep serving the old build to old app versions until they update, or gate
    the rollout on the share of apps that would be refused, not on adoption alone.
    Given the PCR rotation is tracked
    And 80% of apps carry the PCR sets of builds "1.0.0, 2.0.0" and the rest only "1.0.0"
    And the vault service is healthy
    When enclave build "2.0.0" is built (runbook 6.2 step 1)
    And latest-ami names build "2.0.0" (runbook 6.2 step 2)
    And current-ami names build "2.0.0" and an instance refresh rolls it out with MinHealthyPercentage 50 (runbook 6.2 step 4)
    Then the rollout completes within the "Nitro Enclave ASG" objective
    And no app was refused attestation (the "Nitro Enclave ASG" objective)

  Scenario: A build that serves the wrong PCRs is rolled back (runbook 6.3)
    The operator rolls back once the bad build's refresh has finished: while it still runs,
    6.3 step 1's start-instance-refresh is refused (InstanceRefreshInProgress) as in the
    scenarios below, and the fix is the same (cancel it first).
    Given the PCR rotation is tracked
    And every app carries the PCR sets of builds "1.0.0, 2.0.0"
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the canary has made 10 acknowledged writes
    When enclave build "2.0.0" with defect "wrong-pcrs" is built (runbook 6.2 step 1)
    And current-ami names build "2.0.0" and an instance refresh rolls it out with MinHealthyPercentage 50 (runbook 6.2 step 4)
    Then apps are refused attestation
    And the rollout completes within the "Nitro Enclave ASG" objective
    When the operator rolls back to the previous AMI (runbook 6.3 step 1)
    Then attested vault operations recover within the "Nitro Enclave ASG" objective, from the rollback
    And every enclave instance runs build "1.0.0"
    And no acknowledged vault write is lost (the "Nitro Enclave ASG" RPO objective)

  @expected_breach
  Scenario: A build whose enclave fails at start cannot be rolled back as written (runbook 6.3)
    The refresh of a build that never starts stays InProgress, waiting for instances that will
    not serve; runbook 6.3 step 1's start-instance-refresh is then refused
    (InstanceRefreshInProgress) and the service stays at half capacity on the old build. Fix:
    cancel the stuck refresh first (aws autoscaling cancel-instance-refresh), then start the
    rollback refresh; the next scenario shows it.
    Given the PCR rotation is tracked
    And every app carries the PCR sets of builds "1.0.0, 2.0.0"
    And the vault service is healthy
    When enclave build "2.0.0" with defect "crash-on-start" is built (runbook 6.2 step 1)
    And current-ami names build "2.0.0" and an instance refresh rolls it out with MinHealthyPercentage 50 (runbook 6.2 step 4)
    Then the rollout stalls: a replacement instance never serves
    When the operator rolls back to the previous AMI (runbook 6.3 step 1)

  Scenario: A build whose enclave fails at start is rolled back, the stuck refresh cancelled first
    Given the PCR rotation is tracked
    And every app carries the PCR sets of builds "1.0.0, 2.0.0"
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the canary has made 10 acknowledged writes
    When enclave build "2.0.0" with defect "crash-on-start" is built (runbook 6.2 step 1)
    And current-ami names build "2.0.0" and an instance refresh rolls it out with MinHealthyPercentage 50 (runbook 6.2 step 4)
    Then the rollout stalls: a replacement instance never serves
    When the operator rolls back to the previous AMI (runbook 6.3 step 1, cancelling the stuck refresh first)
    Then attested vault operations recover within the "Nitro Enclave ASG" objective, from the rollback
    And every enclave instance runs build "1.0.0"
    And no acknowledged vault write is lost (the "Nitro Enclave ASG" RPO objective)

  @expected_breach
  Scenario: The old PCR set is deprecated while an instance still runs the old build (6.2 step 5)
    Runbook 6.2 step 5 marks the old set with valid_until after 30 days. An instance still on
    the old AMI then (a refresh that never ran or failed) is refused by every app. Fix: before
    deprecating a set, check that no instance runs its build (describe-instances by AMI) and
    finish the rollout first.
    Given the PCR rotation is tracked
    And every app carries the PCR sets of builds "1.0.0, 2.0.0"
    And the vault service is healthy
    When enclave build "2.0.0" is built (runbook 6.2 step 1)
    And the apps deprecate the PCR set of build "1.0.0" (runbook 6.2 step 5)
    Then apps are refused attestation
    And no app was refused attestation (the "Nitro Enclave ASG" objective)
