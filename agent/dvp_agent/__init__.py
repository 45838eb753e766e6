"""`dvp agent`: one party's long-running agent, with only its own keys and journal, and the
authenticated off-ledger channel (gRPC over mutual TLS, every message signed) to its
counterparty's agent.

The agent itself, :class:`Agent` (proposals and agreement, the checks of every message
against its journal, its limits, the drive of its side of each swap) and its
:class:`AcceptPolicy`, are transport-free and live in the core, :mod:`dvp.party.agent` and
:mod:`dvp.party.policy`, so the bench, the tests and :mod:`dvp.testing` run them without this
package; they are re-exported here.  This package holds what a running agent needs beyond
them, which needs gRPC and X.509: its folder and identity, signed envelopes, the gRPC
channel, the outbox, status and metrics, and the ``dvp agent`` commands (docs/design.md,
"Design decisions")."""

from dvp.party.agent import Agent
from dvp.party.policy import AcceptPolicy

__all__ = ["AcceptPolicy", "Agent"]
