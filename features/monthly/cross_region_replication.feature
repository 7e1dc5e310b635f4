@monthly
Feature: The standby region's copies of the vault data, the metadata and the key
  Runbook 7.1 items 1 to 3, on the standby region of runbook 5.1. Nothing of the service is
  broken: each drill writes test data of its own, marked with the prefix "drills-probe/",
  through the public APIs of the primary region, and watches for it through the public APIs
  of the standby. Every figure comes from observed timestamps: a write's acknowledgement,
  then the polls of the other region that missed its copy and the first that saw it (the
  bracket between them is the uncertainty). The test data is removed from both regions
  afterwards, every version of it, also when a drill fails.

  @s3
  Scenario: Marker objects reach the replica bucket in us-west-2 with a lag under the objective (runbook 7.1 item 1)
    S3 cross-region replication lag, marker by marker: p50, p99 and max against the "S3
    Replication" objective (runbook 7.1: under 15 minutes), then the replication status S3
    reports for each marker on both sides.
    Given the vault data bucket replicates to its replica bucket in the DR region
    When 20 marker objects are written to the vault data bucket
    Then every marker is seen in the replica bucket within the "S3 Replication" objective
    And the source reports every marker COMPLETED and the replica bucket every copy REPLICA

  @dynamodb
  Scenario: Items written in either region reach the other, and a conflict converges on the later write (runbook 7.1 item 2, global table consistency)
    Each metadata table is a global table (2019.11.21) with a replica in each region. Items
    written in each region are measured until the other region returns them; then the same
    item is written in both regions before either write reaches the other, and both regions
    must end with the later write (last writer wins).
    Given the metadata tables are global tables with a replica in each region
    When 5 test items are written to each table in each region
    Then every test item is seen in the other region within the "DynamoDB Global Tables" objective
    When the same test item is written in the primary region, then in the DR region before the first write reaches it
    Then both regions converge on the later write within the "DynamoDB Global Tables" objective

  @kms
  Scenario: A ciphertext of the sealing key decrypts through its multi-Region replica key (runbook 7.1 item 3)
    Given the sealing key has a multi-Region replica in the DR region
    And the replica key is Enabled in the DR region
    When a ciphertext is made with the sealing key in the primary region
    Then the ciphertext decrypts in the DR region with the replica key

  @kms @twin_only
  Scenario: The multi-Region replica key decrypts while the sealing key's own region does not answer (runbook 7.1 item 3)
    Multi-Region keys share their key material: a ciphertext from one region decrypts in
    another without calling the first. The twin holds every AWS API request of the primary
    region while the replica decrypts.
    Given the sealing key has a multi-Region replica in the DR region
    And the replica key is Enabled in the DR region
    When a ciphertext is made with the sealing key in the primary region
    And the primary region stops answering AWS API requests
    Then the ciphertext decrypts in the DR region with the replica key while the primary region does not answer
