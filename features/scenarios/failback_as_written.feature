@scenario @region
Feature: Failback in the runbook's order (5.3 steps 1, 2, 3, 4)
  Runbook 5.3 as printed: verify the primary (step 1), sync the DR bucket back with aws s3
  sync (step 2), bring the primary's ASG up and the DR ASG down (step 3), and only then move
  DNS back (step 4). The DR region takes writes until its enclaves are gone, after the sync
  has listed its bucket: those acknowledged writes never reach the primary. A canary writes
  through api.vettid.dev, resolved as the apps resolve it, for the whole exercise; between
  steps 2 and 3 the apps update one vault the canary then keeps to itself (a later write of
  it, landing in the primary, would hide the loss); after failback every acknowledged write
  is looked for in the primary.

  The quarterly failover drill fails back with step 3 before step 2 instead (DR emptied, then
  the sync, then DNS back), and records this as a finding against 5.3.

  @expected_breach
  Scenario: Writes the DR region acknowledged after the sync are lost by failback as written
    Given the DR prerequisites of runbook 5.2 hold
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the canary has made 10 acknowledged writes
    When the operator fails over to the DR region (runbook 5.2 steps 1-2)
    Then the first enrolment through api.vettid.dev is served by the DR region within the "Vault Service" objective
    When the operator fails back in the runbook's order (5.3 steps 1, 2, 3, 4)
    Then api.vettid.dev is served by the primary region again
    And no acknowledged vault write is lost (the "Vault Service" RPO objective)
