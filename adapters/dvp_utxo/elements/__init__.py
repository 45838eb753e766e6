"""The Elements dialect: issued assets, explicit fee outputs and Elements transactions.

Built on ``wallycore`` (libwally's Python binding, Elements-enabled wheel): its
transaction codec (asset and value commitments, issuance fields, the Elements
witness layout), its Elements segwit-v0 signature hash and its issuance entropy
and asset id derivation are the consensus-facing parts; this package only
arranges inputs and outputs.  Values are always explicit (unblinded): every
output this package builds or audits carries a ``0x01``-prefixed asset tag and
value, and anything confidential is refused rather than guessed at.

Modules: :mod:`.wire` (reading blocks and transactions, pure Python),
:mod:`.assets` (asset ids, entropy, explicit encodings), :mod:`.tx` (the
transaction wrapper, signing, payments, issuance), :mod:`.htlc` (the same P2WSH
HTLC as on Bitcoin, funded with any asset), :mod:`.order` and :mod:`.dvp`
(single-ledger DvP as one transaction signed by both parties), :mod:`.ledger`,
:mod:`.adapter` and :mod:`.config` (the ``elements`` ledger kind), :mod:`.launcher`
(a wallet-less ``elementsd -chain=elementsregtest``).  See ``ELEMENTS.md`` for what
was verified against a node and what offline only.
"""
