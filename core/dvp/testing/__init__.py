"""Test kits a ledger adapter subclasses, as web3.py ships ``module_testing``.

* :class:`HtlcConformance`: the HTLC rules every adapter keeps, each shown by an attempt
  to break it.  Subclass it with an ``adapter`` fixture that yields a connected adapter
  whose parties ``seller`` and ``buyer`` hold ``asset``; set ``asset`` (and ``amount``
  if the ledger's dust limit needs more).  A test an adapter cannot run skips with one
  line saying why (no :class:`~dvp.adapter.Observable`, for instance).
* :mod:`dvp.testing.scenarios`: building blocks of the DvP scenario suites (specs,
  balance snapshots, conservation) and :class:`ScenarioSuite`, the scenarios as a base
  class over a ``ledger_set`` fixture and a ``pair``.
* :class:`~dvp.testing.memory.MemoryLedger`: an in-memory ledger for the core's unit
  tests and for checking the kit itself.  It is not a platform: no entry point names it.

Importing this package needs pytest (a test dependency), never a platform library.
"""

from .htlc import HtlcConformance, fee_in, locked, make_terms, pass_time

__all__ = ["HtlcConformance", "fee_in", "locked", "make_terms", "pass_time"]
