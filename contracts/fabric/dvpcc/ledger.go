// Package dvpcc holds the rules of the dvp Fabric chaincode: fungible
// balances, issuance by a configured issuer, hashed time-locked contracts
// (HTLC) and single-ledger delivery-versus-payment orders.
//
// The package depends on the standard library and protobuf's timestamp type
// only.  Each transaction function takes a Stub and an Identity: small
// interfaces whose method sets are subsets of the Fabric shim's
// ChaincodeStubInterface and of the contract API's ClientIdentity, so the
// real objects from a transaction context satisfy them as they are and the
// rules can be tested in memory (see dvpcc_test.go).
//
// Errors returned to clients start with a stable code ("DVP_LOCK_EXPIRED: ...")
// so an adapter can map them onto the dvp error tree without parsing prose.
package dvpcc

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// Stub is the subset of shim.ChaincodeStubInterface the rules use.
type Stub interface {
	GetState(key string) ([]byte, error)
	PutState(key string, value []byte) error
	GetTxID() string
	GetTxTimestamp() (*timestamppb.Timestamp, error)
	SetEvent(name string, payload []byte) error
}

// Identity is the subset of the contract API's cid.ClientIdentity the rules use.
type Identity interface {
	GetMSPID() (string, error)
	GetX509Certificate() (*x509.Certificate, error)
}

// DefaultMaxSkew bounds how far a proposal's transaction timestamp may stray
// from the endorsing peer's own clock (HTLC security rule 8).
const DefaultMaxSkew = 30 * time.Second

// Rules carries the chaincode's fixed parameters; the zero value is not
// usable, build it with NewRules.
type Rules struct {
	// MaxSkew is the largest accepted |tx timestamp - endorser clock|.
	MaxSkew time.Duration
	// Now is the endorser's clock (time.Now in production, fixed in tests).
	Now func() time.Time
}

// NewRules returns the production rules: time.Now and the given skew
// (DefaultMaxSkew when skew <= 0).
func NewRules(skew time.Duration) *Rules {
	if skew <= 0 {
		skew = DefaultMaxSkew
	}
	return &Rules{MaxSkew: skew, Now: time.Now}
}

// Error codes carried at the start of every error message.
const (
	CodeBadArgument        = "DVP_BAD_ARGUMENT"
	CodeUnauthorized       = "DVP_UNAUTHORIZED"
	CodeInsufficientFunds  = "DVP_INSUFFICIENT_FUNDS"
	CodeClockSkew          = "DVP_CLOCK_SKEW"
	CodeLockExists         = "DVP_LOCK_EXISTS"
	CodeLockNotFound       = "DVP_LOCK_NOT_FOUND"
	CodeLockNotActive      = "DVP_LOCK_NOT_ACTIVE"
	CodeLockExpired        = "DVP_LOCK_EXPIRED"
	CodeLockNotExpired     = "DVP_LOCK_NOT_EXPIRED"
	CodeInvalidPreimage    = "DVP_INVALID_PREIMAGE"
	CodeOrderExists        = "DVP_ORDER_EXISTS"
	CodeOrderNotFound      = "DVP_ORDER_NOT_FOUND"
	CodeOrderNotOpen       = "DVP_ORDER_NOT_OPEN"
	CodeOrderExpired       = "DVP_ORDER_EXPIRED"
	CodeNotInitialised     = "DVP_NOT_INITIALISED"
	CodeAlreadyInitialised = "DVP_ALREADY_INITIALISED"
	CodeInternal           = "DVP_INTERNAL"
)

// Error is a rule violation with a stable code.
type Error struct {
	Code string
	Msg  string
}

func (e *Error) Error() string { return e.Code + ": " + e.Msg }

func fail(code, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of a rule error, "" for any other error.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Key prefixes.  Parts are joined with NUL, which validated inputs never
// contain, so two different tuples never map onto one key.
const (
	sep         = "\x00"
	prefixBal   = "bal"
	prefixLock  = "htlc"
	prefixOrder = "order"
	keyIssuer   = "meta" + sep + "issuer"
)

func key(parts ...string) string { return strings.Join(parts, sep) }

// AccountOf returns the account id of an identity: its MSP id and its
// certificate's subject in RFC 2253 form, "<mspid>::<subject>", e.g.
// "BuyerBankMSP::CN=User1@buyerbank.example.com,OU=client,L=...,C=US".
func AccountOf(id Identity) (string, error) {
	msp, err := id.GetMSPID()
	if err != nil || msp == "" {
		return "", fail(CodeUnauthorized, "no MSP id for the caller")
	}
	cert, err := id.GetX509Certificate()
	if err != nil || cert == nil {
		return "", fail(CodeUnauthorized, "the caller has no X.509 certificate")
	}
	return msp + "::" + cert.Subject.String(), nil
}

func isAdmin(id Identity) bool {
	cert, err := id.GetX509Certificate()
	if err != nil || cert == nil {
		return false
	}
	for _, ou := range cert.Subject.OrganizationalUnit {
		if ou == "admin" {
			return true
		}
	}
	return false
}

// txTime returns the proposal's timestamp after checking it against the
// endorser's clock.  Every state-changing function calls it first.
// txCaller checks the transaction's time (txTime) and names its caller: the opening
// of every handler that acts on behalf of the submitting identity.
func (r *Rules) txCaller(stub Stub, id Identity) (time.Time, string, error) {
	now, err := r.txTime(stub)
	if err != nil {
		return time.Time{}, "", err
	}
	caller, err := AccountOf(id)
	if err != nil {
		return time.Time{}, "", err
	}
	return now, caller, nil
}

func (r *Rules) txTime(stub Stub) (time.Time, error) {
	ts, err := stub.GetTxTimestamp()
	if err != nil || ts == nil {
		return time.Time{}, fail(CodeInternal, "no transaction timestamp")
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, fail(CodeBadArgument, "invalid transaction timestamp: %v", err)
	}
	t := ts.AsTime()
	now := r.Now()
	d := t.Sub(now)
	if d < 0 {
		d = -d
	}
	if d > r.MaxSkew {
		return time.Time{}, fail(CodeClockSkew,
			"transaction timestamp %s is %s away from the endorser's clock %s (max %s)",
			t.UTC().Format(time.RFC3339), d, now.UTC().Format(time.RFC3339), r.MaxSkew)
	}
	return t, nil
}

func getJSON(stub Stub, k string, v any) (bool, error) {
	b, err := stub.GetState(k)
	if err != nil {
		return false, fail(CodeInternal, "read state: %v", err)
	}
	if b == nil {
		return false, nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fail(CodeInternal, "decode state: %v", err)
	}
	return true, nil
}

func putJSON(stub Stub, k string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fail(CodeInternal, "encode state: %v", err)
	}
	if err := stub.PutState(k, b); err != nil {
		return fail(CodeInternal, "write state: %v", err)
	}
	return nil
}

func emit(stub Stub, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fail(CodeInternal, "encode event: %v", err)
	}
	if err := stub.SetEvent(name, b); err != nil {
		return fail(CodeInternal, "set event: %v", err)
	}
	return nil
}

// checkText rejects empty strings, NUL (the key separator) and overlong values.
func checkText(field, v string) error {
	if v == "" {
		return fail(CodeBadArgument, "%s is empty", field)
	}
	if len(v) > 1024 {
		return fail(CodeBadArgument, "%s is longer than 1024 bytes", field)
	}
	if strings.ContainsRune(v, 0) {
		return fail(CodeBadArgument, "%s contains NUL", field)
	}
	return nil
}
