@scenario @nats
Feature: One NATS node is cut off from the network
  A network partition isolates one NATS node from its peers and from its clients, with
  every connection left open: nothing is refused, packets just vanish. The majority keeps
  the cluster (and JetStream's quorum); clients and peers notice the lost node only through
  their pings. Service must be stable again within the NATS Cluster objective (5 minutes),
  no acknowledged write may be lost on either side, and the node rejoins once healed.

  Scenario: One NATS instance is cut off; the majority keeps serving
    Given the NATS cluster is whole
    And the vault service is healthy
    And a canary writer makes acknowledged vault writes
    And a JetStream canary publishes acknowledged messages to an R3 stream
    When 1 NATS instance is cut off from the network
    Then vault operations are stable again within the "NATS Cluster" objective
    And JetStream writes recover within the "NATS Cluster" objective
    And no acknowledged JetStream message is lost (the "NATS Cluster" RPO objective)
    And no acknowledged vault write is lost (the "NATS Cluster" RPO objective)
