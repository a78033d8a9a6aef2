# src/gossip: membership, failure detection, ring-state dissemination.
