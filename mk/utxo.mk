# UTXO ledgers (btcd regtest): node binaries, built from the pinned Go module.
# Included from the top Makefile.  Binaries live outside the repository.

BTCD_VERSION ?= v0.24.2
DVP_CACHE ?= $(HOME)/.cache/dvp
BTCD_BIN_DIR := $(DVP_CACHE)/btcd-$(BTCD_VERSION)/bin
BTCD := $(BTCD_BIN_DIR)/btcd
BTCCTL := $(BTCD_BIN_DIR)/btcctl

.PHONY: btcd-bins btcd-clean test-utxo

# `make setup` builds the nodes too (about a minute, once; skipped when cached) and installs
# elementsd from the Elements release archive ($DVP_DIST_MIRROR, else the official download
# address), once: a no-op when present or DVP_ELEMENTSD is set; one line when it cannot be had.
EXTRA_SETUP += btcd-bins elements-release

.PHONY: elements-release
## Install the Elements release archive into the cache (verified, unpacked aside, renamed into place)
elements-release: $(PY_STAMP)
	@$(BIN)/python -m dvp_utxo.bins install-elements

btcd-bins: $(BTCD) $(BTCCTL)

$(BTCD) $(BTCCTL) &:
	@command -v go >/dev/null || { echo "btcd-bins: a Go toolchain is needed on PATH" >&2; exit 1; }
	@mkdir -p $(BTCD_BIN_DIR)
	GOBIN=$(BTCD_BIN_DIR) CGO_ENABLED=0 go install \
	    github.com/btcsuite/btcd@$(BTCD_VERSION) \
	    github.com/btcsuite/btcd/cmd/btcctl@$(BTCD_VERSION)

btcd-clean:
	rm -rf $(DVP_CACHE)/btcd-$(BTCD_VERSION)

test-utxo: setup
	$(BIN)/python -m pytest -m utxo tests/utxo $(PYTEST_ARGS)
