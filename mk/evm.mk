# A second EVM client: geth, built from its pinned Go module (dev mode, 1 s blocks).
# Included from the top Makefile.  The binary lives outside the repository.
# v1.17.x needs a module the Go proxy reachable here refuses, so geth stays on v1.16.7.

GETH_VERSION ?= v1.16.7
DVP_CACHE ?= $(HOME)/.cache/dvp
GETH_BIN_DIR := $(DVP_CACHE)/geth-$(GETH_VERSION)/bin
GETH := $(GETH_BIN_DIR)/geth

.PHONY: geth-bin geth-clean test-geth

# `make setup` builds geth too (about 2 minutes on 2 cores, once; skipped when cached).
EXTRA_SETUP += geth-bin

geth-bin: $(GETH)

$(GETH):
	@command -v go >/dev/null || { echo "geth-bin: a Go toolchain is needed on PATH" >&2; exit 1; }
	@mkdir -p $(GETH_BIN_DIR)
	GOBIN=$(GETH_BIN_DIR) nice -n 10 go install github.com/ethereum/go-ethereum/cmd/geth@$(GETH_VERSION)

geth-clean:
	rm -rf $(DVP_CACHE)/geth-$(GETH_VERSION)

test-geth: setup
	$(BIN)/python -m pytest -m geth $(PYTEST_ARGS)
