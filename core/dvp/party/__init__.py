"""Two parties, two processes: each party's agent holds only its own keys and journal, runs
its own role of a cross-ledger swap, and trusts only what it reads from the ledgers.

Messages between agents (a proposal, its answer, "I locked", "I claimed") are hints: they
save polling, and every fact they announce is read back from the ledger before it is used.
"""
