# Hyperledger Fabric: binaries, chaincode and tests.  Included from the top Makefile.
FABRIC_COMMIT ?= 86c1172bec37e6590c6b1ae6f847833df48d65fc
DVP_CACHE ?= $(HOME)/.cache/dvp
FABRIC_DIR := $(DVP_CACHE)/fabric-$(FABRIC_COMMIT)
PYTEST ?= .venv/bin/python -m pytest

.PHONY: fabric-bins fabric-chaincode fabric-go-test fabric-test fabric-clean

## Build peer, orderer, configtxgen, cryptogen, osnadmin and ccaas_builder (cached)
fabric-bins:
	FABRIC_COMMIT=$(FABRIC_COMMIT) DVP_CACHE=$(DVP_CACHE) bash adapters/dvp_fabric/build_bins.sh

## Build the chaincode server binary (cached by source hash)
fabric-chaincode:
	DVP_CACHE=$(DVP_CACHE) bash adapters/dvp_fabric/build_chaincode.sh

## Chaincode rule tests (no Fabric needed)
fabric-go-test:
	cd contracts/fabric && go test -count=1 ./...

## Chaincode tests, launcher unit tests, then the real network test
fabric-test: fabric-go-test
	$(PYTEST) -q tests/fabric

fabric-clean:
	rm -rf $(FABRIC_DIR)
