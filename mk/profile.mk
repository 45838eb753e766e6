# `make profile`: one `dvp bench` run under py-spy, its flame graph and top entries written to
# docs/profile/$(PROFILE_NAME).svg and .txt by docs/profile/record.py (the raw stacks and the
# bench's results in reports/profile/).  Included from the top Makefile.  py-spy, pinned in
# constraints.txt, is installed here on first use: `make setup` and `make test` do not install it.
PROFILE_NAME ?= profile
PROFILE_ARGS ?= --pairs evm-a/evm-b --swaps 200 --concurrency 100 --throughput-txs 300 --refunds 0
PROFILE_RATE ?= 50
# Draw only the stacks with a frame containing one of these (space-separated; with --agents in
# PROFILE_ARGS the default is the agents' stacks); see docs/profile/README.md.
PROFILE_KEEP ?=
# Leave out the stacks with a frame containing one of these (e.g. the bench's start-up, baselines
# and report: PROFILE_DROP="_find_and_load LocalRuntime. baselines render_all", flame.SETUP).
PROFILE_DROP ?=
# More options of docs/profile/record.py: --every-stack (--agents runs: draw every stack),
# --subprocesses (sample the bench's child processes too: --workers runs).
PROFILE_OPTS ?=
PY_SPY := $(BIN)/py-spy

.PHONY: profile
profile: setup $(PY_SPY)
	$(BIN)/python docs/profile/record.py $(PROFILE_NAME) --rate $(PROFILE_RATE) \
	  $(if $(strip $(PROFILE_KEEP)),--keep $(PROFILE_KEEP)) $(if $(strip $(PROFILE_DROP)),--drop $(PROFILE_DROP)) \
	  $(PROFILE_OPTS) -- $(PROFILE_ARGS)

$(PY_SPY): constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt py-spy
	touch $@
