"""`dvp agent`: one party's long-running agent, with only its own keys and journal, and the
authenticated off-ledger channel (gRPC over mutual TLS, every message signed) to its
counterparty's agent.  The protocol-neutral logic is :mod:`dvp.party`; this package holds
what needs gRPC and X.509."""
