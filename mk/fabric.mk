# Hyperledger Fabric: binaries, the Node.js chaincode and its tests.  Included from the top Makefile.
#
# Fabric itself is read from $DVP_FABRIC_HOME (an unpacked official 3.1.5 release: bin/ and
# config/, with builders/ccaas/) or from the cache below, where `make fabric-bins` builds it
# from the Go module where the module proxy serves github.com/hyperledger/fabric.
FABRIC_COMMIT ?= 86c1172bec37e6590c6b1ae6f847833df48d65fc
DVP_CACHE ?= $(HOME)/.cache/dvp
FABRIC_DIR := $(DVP_CACHE)/fabric-$(FABRIC_COMMIT)
FABRIC_CC := contracts/fabric/node
FABRIC_CC_STAMP := $(FABRIC_CC)/node_modules/.installed
PYTEST ?= .venv/bin/python -m pytest

.PHONY: fabric-drills fabric-bins fabric-chaincode fabric-cc-test fabric-test fabric-clean

# `make setup` installs the chaincode's pinned npm packages (fabric-contract-api, fabric-shim) and
# Fabric itself from its release archive ($DVP_DIST_MIRROR, else the official download address) into
# the cache, once: a no-op when present or DVP_FABRIC_HOME is set; one line and the set-up goes on
# when the archive cannot be had.
EXTRA_SETUP += fabric-chaincode fabric-release

.PHONY: fabric-release
## Install Fabric's release archive into the cache (verified, unpacked aside, renamed into place)
fabric-release: $(PY_STAMP)
	@$(BIN)/python -m dvp_fabric.bins

## Build peer, orderer, configtxgen, cryptogen, osnadmin and ccaas_builder from the Go module (cached)
fabric-bins:
	FABRIC_COMMIT=$(FABRIC_COMMIT) DVP_CACHE=$(DVP_CACHE) bash adapters/dvp_fabric/build_bins.sh

## The chaincode's npm dependencies, exactly as its package-lock.json pins them
fabric-chaincode: $(FABRIC_CC_STAMP)

$(FABRIC_CC_STAMP): $(FABRIC_CC)/package.json $(FABRIC_CC)/package-lock.json
	cd $(FABRIC_CC) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Chaincode rule tests on an in-memory ledger (node's test runner; no Fabric needed)
fabric-cc-test: fabric-chaincode
	cd $(FABRIC_CC) && node --test test/

## Chaincode rule tests, launcher unit tests, then the real network tests
fabric-test: fabric-cc-test
	$(PYTEST) -q tests/fabric

fabric-clean:
	rm -rf $(FABRIC_DIR) $(FABRIC_CC)/node_modules

## The crash drill after every journal write on every Fabric pair (minutes a pair; not in `make test`)
fabric-drills: setup
	$(BIN)/python -m pytest -m fabric_drills tests/e2e/test_crash_resume.py $(PYTEST_ARGS)
