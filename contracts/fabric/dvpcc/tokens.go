package dvpcc

import (
	"math"
	"strconv"
)

// ParseAmount parses a positive decimal amount (no sign, no leading zeros
// beyond "0" itself, at most uint64).  Zero is rejected: every amount the
// chaincode moves must be above zero.
func ParseAmount(field, s string) (uint64, error) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, fail(CodeBadArgument, "%s %q is not a canonical decimal amount", field, s)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fail(CodeBadArgument, "%s %q is not a canonical decimal amount", field, s)
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fail(CodeBadArgument, "%s %q is out of range", field, s)
	}
	if v == 0 {
		return 0, fail(CodeBadArgument, "%s must be above zero", field)
	}
	return v, nil
}

type balance struct {
	Amount uint64 `json:"amount,string"`
}

func balKey(asset, account string) string { return key(prefixBal, asset, account) }

func getBalance(stub Stub, asset, account string) (uint64, error) {
	var b balance
	if _, err := getJSON(stub, balKey(asset, account), &b); err != nil {
		return 0, err
	}
	return b.Amount, nil
}

func credit(stub Stub, asset, account string, amount uint64) error {
	cur, err := getBalance(stub, asset, account)
	if err != nil {
		return err
	}
	if cur > math.MaxUint64-amount {
		return fail(CodeBadArgument, "balance of %s in %s would overflow", account, asset)
	}
	return putJSON(stub, balKey(asset, account), balance{Amount: cur + amount})
}

func debit(stub Stub, asset, account string, amount uint64) error {
	cur, err := getBalance(stub, asset, account)
	if err != nil {
		return err
	}
	if cur < amount {
		return fail(CodeInsufficientFunds, "%s holds %d %s, needs %d", account, cur, asset, amount)
	}
	return putJSON(stub, balKey(asset, account), balance{Amount: cur - amount})
}

// Meta is the chaincode's one-time configuration.
type Meta struct {
	Issuer string `json:"issuer"`
}

// InitLedger names the issuer account.  It runs once; the caller must be an
// organisation admin (certificate OU "admin", as NodeOUs give it).
func (r *Rules) InitLedger(stub Stub, id Identity, issuer string) error {
	if _, err := r.txTime(stub); err != nil {
		return err
	}
	if err := checkText("issuer", issuer); err != nil {
		return err
	}
	if !isAdmin(id) {
		return fail(CodeUnauthorized, "only an organisation admin may initialise the ledger")
	}
	var m Meta
	found, err := getJSON(stub, keyIssuer, &m)
	if err != nil {
		return err
	}
	if found {
		return fail(CodeAlreadyInitialised, "the issuer is already set")
	}
	return putJSON(stub, keyIssuer, Meta{Issuer: issuer})
}

// Issuer returns the configured issuer account.
func (r *Rules) Issuer(stub Stub) (string, error) {
	var m Meta
	found, err := getJSON(stub, keyIssuer, &m)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fail(CodeNotInitialised, "InitLedger has not run")
	}
	return m.Issuer, nil
}

// Issue mints amount of asset to recipient; only the issuer may call it.
func (r *Rules) Issue(stub Stub, id Identity, recipient, asset, amountS string) error {
	_, caller, err := r.txCaller(stub, id)
	if err != nil {
		return err
	}
	issuer, err := r.Issuer(stub)
	if err != nil {
		return err
	}
	if caller != issuer {
		return fail(CodeUnauthorized, "only the issuer may issue")
	}
	if err := checkText("recipient", recipient); err != nil {
		return err
	}
	if err := checkText("asset", asset); err != nil {
		return err
	}
	amount, err := ParseAmount("amount", amountS)
	if err != nil {
		return err
	}
	if err := credit(stub, asset, recipient, amount); err != nil {
		return err
	}
	return emit(stub, "Issued", map[string]string{
		"txId": stub.GetTxID(), "recipient": recipient, "asset": asset,
		"amount": strconv.FormatUint(amount, 10),
	})
}

// Transfer moves amount of asset from the caller to recipient.
func (r *Rules) Transfer(stub Stub, id Identity, recipient, asset, amountS string) error {
	_, caller, err := r.txCaller(stub, id)
	if err != nil {
		return err
	}
	if err := checkText("recipient", recipient); err != nil {
		return err
	}
	if err := checkText("asset", asset); err != nil {
		return err
	}
	amount, err := ParseAmount("amount", amountS)
	if err != nil {
		return err
	}
	if recipient == caller {
		return fail(CodeBadArgument, "recipient is the caller")
	}
	if err := debit(stub, asset, caller, amount); err != nil {
		return err
	}
	if err := credit(stub, asset, recipient, amount); err != nil {
		return err
	}
	return emit(stub, "Transferred", map[string]string{
		"txId": stub.GetTxID(), "sender": caller, "recipient": recipient,
		"asset": asset, "amount": strconv.FormatUint(amount, 10),
	})
}

// BalanceOf returns the balance of account in asset as a decimal string.
func (r *Rules) BalanceOf(stub Stub, account, asset string) (string, error) {
	if err := checkText("account", account); err != nil {
		return "", err
	}
	if err := checkText("asset", asset); err != nil {
		return "", err
	}
	v, err := getBalance(stub, asset, account)
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(v, 10), nil
}

// WhoAmI returns the caller's account id.
func (r *Rules) WhoAmI(id Identity) (string, error) {
	return AccountOf(id)
}
