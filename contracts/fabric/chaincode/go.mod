// The chaincode server binary: dvpcc's rules behind the Fabric contract API,
// run as chaincode-as-a-service.  A separate module so that the rules in the
// parent module build and test with no Hyperledger module at all.
//
// go.sum is produced by `go mod tidy` on a machine whose Go module proxy
// serves github.com/hyperledger/* (see README.md); commit it once made.
module dvp/contracts/fabric/chaincode

go 1.24

require (
	dvp/contracts/fabric v0.0.0
	github.com/hyperledger/fabric-chaincode-go/v2 v2.3.0
	github.com/hyperledger/fabric-contract-api-go/v2 v2.2.1
)

replace dvp/contracts/fabric => ../
