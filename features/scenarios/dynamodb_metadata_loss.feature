@scenario @dynamodb
Feature: Vault metadata deleted or corrupted in DynamoDB
  Runbook 2.2: the credentials ledger (VettID-Ledger-Credentials) holds each vault's data key,
  encrypted under KMS. Without its item a vault can no longer be written ("not enrolled"); with
  a corrupted one its data key cannot be unwrapped. Reads keep working (they use the copy of
  the key stored with the data), so the drill watches writes. The operator takes the on-demand
  backup the runbook asks for before a change, restores the table to a point in time into
  VettID-Ledger-Credentials-restored, copies the damaged items back and deletes the copy.

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

  Scenario: Credential items corrupted, restored as of just before the corruption
    Given vault writes to 2 enrolled vaults are probed
    And the vault service is healthy
    When the metadata items of the probed vaults are corrupted in "VettID-Ledger-Credentials"
    Then vault operations fail with "InvalidCiphertextException"
    When the operator restores the damaged items of "VettID-Ledger-Credentials" as of just before the fault (runbook 2.2)
    Then vault writes recover within the "Vault Service" objective
    And the restored items match their last acknowledged state (the "Vault Service" RPO objective)
    And no restored copy of "VettID-Ledger-Credentials" is left behind
