@scenario @enclave
Feature: Which health checks replace an instance whose enclave crashed
  Runbook 3.1 expects the Auto Scaling group to replace an instance whose enclave process
  crashed. Whether it does depends on the group's HealthCheckType (EC2 Auto Scaling User
  Guide, "Health checks for instances in an Auto Scaling group"): EC2 status checks see the
  instance, which keeps running, not the process; only ELB health checks, with a target group
  whose health check is the enclave's own endpoint, see the crash. The monthly drill
  "The enclave process crashes and the ASG health check replaces the instance" shows the ELB
  group doing it; this one shows what a group left on EC2 checks does.

  @expected_breach
  Scenario: The enclave process crashes on a group with EC2 health checks only
    The group is switched to EC2 health checks for the drill, then one enclave process is
    killed. The instance stays InService and Healthy in the Auto Scaling group and its enclave
    never answers again: twice the time an ELB health check takes to replace it, capacity is
    still one short, and no replacement is coming.
    Fix: use ELB health checks (HealthCheckType ELB with a target group whose health check is the enclave's) so a crashed enclave is replaced; runbook 3.1 assumes it
    Given the vault service is healthy
    When the enclave ASG uses EC2 health checks only
    And the enclave process crashes on 1 instance
    Then the enclave ASG is still short of capacity when an ELB health check would have replaced the instance (the "Nitro Enclave ASG" objective)
