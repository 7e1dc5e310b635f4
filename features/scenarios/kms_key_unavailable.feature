@scenario @kms
Feature: KMS sealing key unavailable
  Runbook 3.4 and 4.3: the sealing key that seals every vault's data key becomes unusable.
  Vault operations fail with the KMS error itself, the operator finds the key's state the
  way the runbook's diagnosis does (its ARN from SSM, then describe-key) and brings it back
  with the runbook's commands, within the KMS Sealing Key objective, losing no acknowledged
  write. A key actually deleted cannot be brought back: that case is drilled on a scratch
  key, on the twin only, and its data loss is measured and reported.
  The sealing key is a multi-Region primary with a replica in us-west-2 (runbook 5.1), so
  scheduling its deletion leaves it PendingReplicaDeletion, as AWS documents, not the
  PendingDeletion the runbook's diagnosis names; cancel-key-deletion recovers it all the same.

  Scenario: The sealing key is disabled and re-enabled (runbook 4.3 step 1)
    Given a canary writer makes acknowledged vault writes
    And the vault service is healthy
    And the canary has made 10 acknowledged writes
    When the sealing key is disabled
    Then vault operations fail with "DisabledException"
    And the runbook 4.3 diagnosis finds the sealing key "Disabled"
    When the operator recovers the sealing key (runbook 4.3)
    Then after enable-key the sealing key was "Enabled"
    And vault operations recover within the "KMS Sealing Key" objective
    And no acknowledged vault write is lost (the "KMS Sealing Key" RPO objective)

  Scenario: The sealing key is scheduled for deletion; cancelled, then re-enabled (runbook 4.3 step 2)
    Given a canary writer makes acknowledged vault writes
    And the vault service is healthy
    And the canary has made 10 acknowledged writes
    When the sealing key is scheduled for deletion in 7 days
    Then vault operations fail with "KMSInvalidStateException"
    And the runbook 4.3 diagnosis finds the sealing key "PendingReplicaDeletion"
    When the operator recovers the sealing key (runbook 4.3)
    Then after cancel-key-deletion the sealing key was "Disabled"
    And after enable-key the sealing key was "Enabled"
    And vault operations recover within the "KMS Sealing Key" objective
    And no acknowledged vault write is lost (the "KMS Sealing Key" RPO objective)

  @twin_only
  Scenario: A key deleted after its waiting period loses the data sealed under it (runbook 4.3 step 3)
    Given a canary writer makes acknowledged vault writes
    And the vault service is healthy
    And the canary has made 10 acknowledged writes
    When a scratch KMS key sealing 5 scratch vaults is deleted after its waiting period
    Then runbook 4.3 cannot bring the deleted key back
    And the data sealed under the deleted key is reported as permanently lost
    And the runbook 4.3 diagnosis finds the sealing key "Enabled"
    And no acknowledged vault write is lost (the "KMS Sealing Key" RPO objective)
