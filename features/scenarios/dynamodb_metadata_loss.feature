@scenario @dynamodb
Feature: Vault metadata deleted or corrupted in DynamoDB
  Runbook 2.2: the credentials ledger (VettID-Ledger-Credentials) holds each vault's data key,
  encrypted under KMS. Without its item a vault can no longer be written ("not enrolled"); with
  a corrupted one its data key cannot be unwrapped. Reads keep working (they use the copy of
  the key stored with the data), so the drill watches writes. The operator takes the on-demand
  backup the runbook asks for before a change, restores the table to a point in time into
  VettID-Ledger-Credentials-restored, copies items back and deletes the copy. The canary
  enrolls vaults and updates earlier ones throughout: a restore that sets an item back loses
  the updates acknowledged since, and the canary's record says exactly which.

  Scenario: Credential items deleted, restored as of just before the deletion
    Given vault writes to 3 enrolled vaults are probed
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the canary has made 20 acknowledged writes
    When the metadata items of the probed vaults are deleted from "VettID-Ledger-Credentials"
    Then vault operations fail with "not enrolled"
    When the operator restores the damaged items of "VettID-Ledger-Credentials" as of just before the fault (runbook 2.2)
    Then vault writes recover within the "Vault Service" objective
    And the restored items match their last acknowledged state (the "Vault Service" RPO objective)
    And no restored copy of "VettID-Ledger-Credentials" is left behind
    And no acknowledged vault write is lost (the "Vault Service" RPO objective)
    And no acknowledged vault write is lost (the "Vault Service" RPO objective)

  Scenario: Credential items corrupted, restored as of just before the corruption
    Given vault writes to 2 enrolled vaults are probed
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the canary has made 20 acknowledged writes
    When the metadata items of the probed vaults are corrupted in "VettID-Ledger-Credentials"
    Then vault operations fail with "InvalidCiphertextException"
    When the operator restores the damaged items of "VettID-Ledger-Credentials" as of just before the fault (runbook 2.2)
    Then vault writes recover within the "Vault Service" objective
    And the restored items match their last acknowledged state (the "Vault Service" RPO objective)
    And no restored copy of "VettID-Ledger-Credentials" is left behind
    And no acknowledged vault write is lost (the "Vault Service" RPO objective)

  Scenario: Credential items of vaults the canary keeps updating are deleted, restored as of just before the deletion and the updates since replayed
    The restore time has whole seconds: updates acknowledged in the second of the damage lie
    after it, and copying the items back would roll them back. Each vault's data object is
    written before its ledger item, so its current version is replayed onto the item.
    Given vault writes to 2 enrolled vaults are probed
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the canary has made 20 acknowledged writes
    When the canary keeps updating 3 of its vaults while their metadata items and the probed vaults' are deleted from "VettID-Ledger-Credentials"
    Then vault operations fail with "not enrolled"
    When the operator restores the damaged items of "VettID-Ledger-Credentials" as of just before the fault (runbook 2.2)
    Then vault writes recover within the "Vault Service" objective
    And no restored copy of "VettID-Ledger-Credentials" is left behind
    And no acknowledged vault write is lost (the "Vault Service" RPO objective)

  @expected_breach
  Scenario: Credential items deleted, the table taken from its latest restorable time (runbook 2.2 as written)
    The runbook's command restores the latest restorable time, which AWS puts about 5 minutes
    in the past, and taking the table from the backup puts every item back as it was then.
    Every update acknowledged since, to an item that existed then, is rolled back: the drill
    counts those writes exactly against the canary's own record.
    Fix: restore as of just before the damage (--restore-date-time, the whole second at or
    before it), copy back only the damaged items, and replay onto them what was written since
    the restore time (from each vault's data object in S3, which is written before its ledger
    item); see the scenarios "restored as of just before the deletion" and "... the updates
    since replayed".
    Given vault writes to 3 enrolled vaults are probed
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And the point-in-time recovery of "VettID-Ledger-Credentials" holds the canary's first 40 acknowledged writes
    When the metadata items of the probed vaults are deleted from "VettID-Ledger-Credentials"
    Then vault operations fail with "not enrolled"
    When the operator restores "VettID-Ledger-Credentials" to its latest restorable time and copies every item back (runbook 2.2 as written)
    Then the writes lost are exactly the canary's acknowledged writes after the restore time
    And vault writes recover within the "Vault Service" objective
    And no restored copy of "VettID-Ledger-Credentials" is left behind
    And no acknowledged vault write is lost (the "Vault Service" RPO objective)
