// Command dvpcc serves the dvp chaincode.
//
// With CHAINCODE_SERVER_ADDRESS set it runs as chaincode-as-a-service: it
// listens there (plain gRPC on loopback) and peers dial it, identifying the
// package by CORE_CHAINCODE_ID_NAME (the package id from `peer lifecycle
// chaincode install`).  Without it, it dials a peer as a classic chaincode.
// DVP_MAX_SKEW_SECONDS overrides the tx-timestamp skew bound (default 30).
package main

import (
	"log"
	"os"
	"strconv"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"

	"dvp/contracts/fabric/dvpcc"
)

func main() {
	skew := dvpcc.DefaultMaxSkew
	if s := os.Getenv("DVP_MAX_SKEW_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			log.Fatalf("DVP_MAX_SKEW_SECONDS=%q is not a positive integer", s)
		}
		skew = time.Duration(n) * time.Second
	}
	cc, err := contractapi.NewChaincode(&Contract{rules: dvpcc.NewRules(skew)})
	if err != nil {
		log.Fatalf("create chaincode: %v", err)
	}
	cc.Info.Title = "dvp"
	cc.Info.Version = "1.0"

	addr := os.Getenv("CHAINCODE_SERVER_ADDRESS")
	if addr == "" {
		if err := cc.Start(); err != nil {
			log.Fatalf("start chaincode: %v", err)
		}
		return
	}
	ccid := os.Getenv("CORE_CHAINCODE_ID_NAME")
	if ccid == "" {
		log.Fatal("CORE_CHAINCODE_ID_NAME is required with CHAINCODE_SERVER_ADDRESS")
	}
	server := &shim.ChaincodeServer{
		CCID:     ccid,
		Address:  addr,
		CC:       cc,
		TLSProps: shim.TLSProperties{Disabled: true},
	}
	log.Printf("dvpcc serving %s on %s (max skew %s)", ccid, addr, skew)
	if err := server.Start(); err != nil {
		log.Fatalf("chaincode server: %v", err)
	}
}
