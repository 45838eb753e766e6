package main

import (
	"encoding/json"

	"github.com/hyperledger/fabric-chaincode-go/v2/pkg/cid"
	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"

	"dvp/contracts/fabric/dvpcc"
)

// Contract exposes dvpcc's rules as transaction functions.  Every argument
// and result is a string (structs as JSON) so the contract API's schema
// checks never reinterpret amounts.
type Contract struct {
	contractapi.Contract
	rules *dvpcc.Rules
}

type ctx = contractapi.TransactionContextInterface

// The shim's stub and the contract API's client identity must keep
// satisfying the small interfaces the rules are written against.
var (
	_ dvpcc.Stub     = shim.ChaincodeStubInterface(nil)
	_ dvpcc.Identity = cid.ClientIdentity(nil)
)

func (c *Contract) InitLedger(x ctx, issuer string) error {
	return c.rules.InitLedger(x.GetStub(), x.GetClientIdentity(), issuer)
}

func (c *Contract) Issuer(x ctx) (string, error) { return c.rules.Issuer(x.GetStub()) }

func (c *Contract) WhoAmI(x ctx) (string, error) { return c.rules.WhoAmI(x.GetClientIdentity()) }

func (c *Contract) Issue(x ctx, recipient, asset, amount string) error {
	return c.rules.Issue(x.GetStub(), x.GetClientIdentity(), recipient, asset, amount)
}

func (c *Contract) Transfer(x ctx, recipient, asset, amount string) error {
	return c.rules.Transfer(x.GetStub(), x.GetClientIdentity(), recipient, asset, amount)
}

func (c *Contract) BalanceOf(x ctx, account, asset string) (string, error) {
	return c.rules.BalanceOf(x.GetStub(), account, asset)
}

func (c *Contract) Lock(x ctx, recipient, asset, amount, hashlock, expiry, nonce string) (string, error) {
	return c.rules.Lock(x.GetStub(), x.GetClientIdentity(), recipient, asset, amount, hashlock, expiry, nonce)
}

func (c *Contract) Claim(x ctx, lockID, preimage string) error {
	return c.rules.Claim(x.GetStub(), lockID, preimage)
}

func (c *Contract) Refund(x ctx, lockID string) error {
	return c.rules.Refund(x.GetStub(), x.GetClientIdentity(), lockID)
}

func (c *Contract) GetLock(x ctx, lockID string) (string, error) {
	l, err := c.rules.GetLock(x.GetStub(), lockID)
	return asJSON(l, err)
}

func (c *Contract) ProposeOrder(x ctx, buyer, secAsset, secAmount, cashAsset, cashAmount, expiry, nonce string) (string, error) {
	return c.rules.ProposeOrder(x.GetStub(), x.GetClientIdentity(), buyer, secAsset, secAmount, cashAsset, cashAmount, expiry, nonce)
}

func (c *Contract) AcceptOrder(x ctx, orderID string) error {
	return c.rules.AcceptOrder(x.GetStub(), x.GetClientIdentity(), orderID)
}

func (c *Contract) CancelOrder(x ctx, orderID string) error {
	return c.rules.CancelOrder(x.GetStub(), x.GetClientIdentity(), orderID)
}

func (c *Contract) GetOrder(x ctx, orderID string) (string, error) {
	o, err := c.rules.GetOrder(x.GetStub(), orderID)
	return asJSON(o, err)
}

func asJSON(v any, err error) (string, error) {
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
