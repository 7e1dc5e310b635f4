@scenario @region @twin_only @full_outage
Feature: Region-wide outage of us-east-1
  Runbook 3.6 ("Multiple services failing simultaneously", recovery: section 5). While a canary
  writes through api.vettid.dev, us-east-1 goes dark as a whole: its AWS APIs, NATS, enclaves
  and API endpoint stop answering, and nothing replicates out of it. The outage is detected by
  Route 53's health check of the primary's API; the operator fails over with runbook 5.2.

  Measured: detection, the decision, DR capacity ready, the first enrolment through
  api.vettid.dev served in us-west-2, the service's recovery as the apps see it; and the RPO
  exactly: the writes us-east-1 acknowledged but had not replicated when it went dark, looked
  up write by write in us-west-2's own stores. Replication is asynchronous, so RPO 0 may be out
  of reach for a region loss: the figure is reported, and a loss becomes a finding against the
  runbook's RPO 0, not a hidden failure. Route 53's control plane is in us-east-1, so the
  runbook's DNS change (5.2 step 2) cannot be made: the health-checked failover records must
  move the clients. When us-east-1 returns, replication drains and the operator fails back
  (5.3); every write acknowledged before it returned is then in us-east-1. Its health check
  passes as soon as it returns, so the failover records send clients back before failback:
  the writes acknowledged from then on are counted apart, and a loss among them is a finding.

  Scenario: us-east-1 goes dark while apps write; the service fails over to us-west-2
    Given the DR prerequisites of runbook 5.2 hold
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the canary has made 10 acknowledged writes
    When us-east-1 is isolated (a region-wide outage)
    Then the writes acknowledged in us-east-1 but not replicated when it went dark are counted against the "Vault Service" RPO objective
    And the outage is detected by the Route 53 health check within the "Vault Service" objective
    When the operator fails over to the DR region (runbook 5.2 steps 1-2)
    Then the DR region serves at desired capacity within the "Vault Service" objective
    And the runbook's DNS change could not be made while us-east-1 was dark
    And the first enrolment through api.vettid.dev is served by the DR region within the "Vault Service" objective
    And vault operations recover within the "Vault Service" objective of the outage
    When us-east-1 returns
    Then replication catches up within the "Vault Service" objective
    When the operator fails back to the primary region (runbook 5.3)
    Then api.vettid.dev is served by the primary region again
    And no write acknowledged before us-east-1 returned is lost, apart from writes a late replica buried in DR (the "Vault Service" RPO objective)
