@monthly @ssm
Feature: SSM parameter backup restoration
  Runbook 7.1 "Test SSM parameter backup restoration" (section 2.3): every /vettid/ parameter
  is exported, decrypted, into one SSE-KMS object in vettid-dr-backups, straight from memory
  (no plaintext on local disk). Parameters are then lost; the operator restores them from the
  backup with their original types and KMS keys and checks each against the backup by hash.
  Enclaves read their parameters at boot only, so the symptom, and the proof of recovery, is an
  enclave booting: after the restore an instance is replaced and must boot and serve.

  Scenario: Critical parameters deleted and restored from the encrypted backup
    Given the vault service is healthy
    And every "/vettid/" SSM parameter is backed up to an encrypted object in "vettid-dr-backups" (runbook 2.3)
    When the SSM parameters "/vettid/nitro/parent-nats-creds" and "/vettid/nitro/sealing-key-arn" are deleted
    Then an enclave booting now fails with "ParameterNotFound"
    When the operator restores the SSM parameters from the backup (runbook 2.3)
    Then every backed-up SSM parameter is restored identically within the "Vault Service" objective
    And no backed-up SSM parameter is lost (the "Vault Service" RPO objective)
    And an enclave booting now reads its parameters and connects to NATS
    When 1 enclave instance is terminated
    Then the enclave ASG returns to desired capacity within the "Nitro Enclave ASG" objective

  Scenario: Parameters corrupted and restored from the encrypted backup
    Given the vault service is healthy
    And every "/vettid/" SSM parameter is backed up to an encrypted object in "vettid-dr-backups" (runbook 2.3)
    When the SSM parameters "/vettid/nitro/parent-nats-creds" and "/vettid/nitro-enclave/current-ami" are corrupted
    Then an enclave booting now fails with "InvalidCredentials"
    When the operator restores the SSM parameters from the backup (runbook 2.3)
    Then every backed-up SSM parameter is restored identically within the "Vault Service" objective
    And no backed-up SSM parameter is lost (the "Vault Service" RPO objective)
    And an enclave booting now reads its parameters and connects to NATS
    When 1 enclave instance is terminated
    Then the enclave ASG returns to desired capacity within the "Nitro Enclave ASG" objective
