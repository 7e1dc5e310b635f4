@scenario @enclave @full_outage
Feature: Enclave AMI deregistered
  Runbook 4.1 steps 1-2: the AMI that /vettid/nitro-enclave/current-ami names is
  deregistered, so the enclave ASG cannot launch instances and, once the running ones are
  lost, no enclave serves. The operator finds the failed launches and the missing AMI
  (step 1), rolls the parameter back to the previous known-good AMI and starts an instance
  refresh (step 2). This works because the launch template resolves the parameter at every
  launch (ImageId resolve:ssm:/vettid/nitro-enclave/current-ami).

  Scenario: The current AMI is deregistered and every instance is lost; rollback and refresh restore the service
    Given the vault service is healthy
    And the enclave launch template takes its AMI from "/vettid/nitro-enclave/current-ami"
    And a canary writer makes acknowledged vault writes
    And the canary has made 10 acknowledged writes
    When the current enclave AMI is deregistered
    And all enclave instances are terminated
    Then vault operations fail with "no-responders"
    And enclave instance launches fail with "does not exist"
    When the operator diagnoses the failed launches (runbook 4.1 step 1)
    And the operator rolls back to the previous known-good AMI and starts an instance refresh (runbook 4.1 step 2)
    Then the enclave ASG returns to desired capacity within the "Nitro Enclave ASG" objective
    And the instance refresh completes within the "Nitro Enclave ASG" objective
    And every enclave instance runs the previous known-good AMI
    And vault operations recover within the "Nitro Enclave ASG" objective
    And no acknowledged vault write is lost (the "Nitro Enclave ASG" RPO objective)
