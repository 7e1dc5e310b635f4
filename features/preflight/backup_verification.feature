@preflight
Feature: Backup verification
  Runbook 2.1-2.4 "Backup Verification", as a pre-flight any drill run can include: the
  protections every recovery procedure relies on are in place before anything is broken. Each
  check is read-only; a failed one names the resource, the runbook section and the fix.

  Scenario: The vault data bucket keeps versions and encrypts with KMS
    Then the vault data bucket keeps every version (runbook 2.1)
    And the vault data bucket encrypts new objects with SSE-KMS (runbook 2.1)

  Scenario Outline: Point-in-time recovery is enabled on <table>
    Then point-in-time recovery is enabled on "<table>" (runbook 2.2)

    Examples:
      | table                           |
      | VettID-Vault-EnrollmentSessions |
      | VettID-Ledger-Credentials       |
      | VettID-Ledger-TransactionKeys   |

  Scenario: The critical SSM parameters are present
    Then the critical SSM parameters are present (runbook 2.3)

  Scenario: The sealing key is enabled and not pending deletion
    Then the sealing key is enabled and not pending deletion (runbook 2.4)
