package dvpcc

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// ---- in-memory ledger: one write set per transaction, dropped on error ----

type memLedger struct {
	state  map[string][]byte
	events []event
	txSeq  int
}

type event struct {
	name    string
	payload []byte
}

type memStub struct {
	l      *memLedger
	txID   string
	ts     time.Time
	writes map[string][]byte
	ev     *event
}

func (s *memStub) GetState(k string) ([]byte, error) {
	if v, ok := s.writes[k]; ok {
		return v, nil
	}
	return s.l.state[k], nil
}
func (s *memStub) PutState(k string, v []byte) error { s.writes[k] = v; return nil }
func (s *memStub) GetTxID() string                   { return s.txID }
func (s *memStub) GetTxTimestamp() (*timestamppb.Timestamp, error) {
	return timestamppb.New(s.ts), nil
}
func (s *memStub) SetEvent(name string, p []byte) error { s.ev = &event{name, p}; return nil }

type fakeID struct {
	msp  string
	cert *x509.Certificate
}

func (f fakeID) GetMSPID() (string, error)                      { return f.msp, nil }
func (f fakeID) GetX509Certificate() (*x509.Certificate, error) { return f.cert, nil }

func ident(msp, cn, ou string) fakeID {
	return fakeID{msp, &x509.Certificate{Subject: pkix.Name{
		CommonName: cn, OrganizationalUnit: []string{ou}, Country: []string{"US"},
	}}}
}

var (
	t0      = time.Unix(1_700_000_000, 0)
	admin   = ident("SellerBankMSP", "Admin@sellerbank.example.com", "admin")
	issuerI = ident("SellerBankMSP", "Issuer@sellerbank.example.com", "client")
	seller  = ident("SellerBankMSP", "User1@sellerbank.example.com", "client")
	buyer   = ident("BuyerBankMSP", "User1@buyerbank.example.com", "client")
	mallory = ident("BuyerBankMSP", "Mallory@buyerbank.example.com", "client")
)

func acct(t *testing.T, id Identity) string {
	t.Helper()
	a, err := AccountOf(id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// env is one ledger plus an endorser clock the tests move.
type env struct {
	t     *testing.T
	l     *memLedger
	r     *Rules
	clock time.Time
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, l: &memLedger{state: map[string][]byte{}}, clock: t0}
	e.r = &Rules{MaxSkew: DefaultMaxSkew, Now: func() time.Time { return e.clock }}
	return e
}

// tx runs fn as one transaction stamped at the endorser's clock plus skew,
// committing its writes and event only when fn succeeds.
func (e *env) txAt(skew time.Duration, fn func(s Stub) error) (error, *event) {
	e.l.txSeq++
	s := &memStub{l: e.l, txID: fmt.Sprintf("tx%d", e.l.txSeq), ts: e.clock.Add(skew), writes: map[string][]byte{}}
	if err := fn(s); err != nil {
		return err, nil
	}
	for k, v := range s.writes {
		e.l.state[k] = v
	}
	if s.ev != nil {
		e.l.events = append(e.l.events, *s.ev)
	}
	return nil, s.ev
}

func (e *env) tx(fn func(s Stub) error) error {
	err, _ := e.txAt(0, fn)
	return err
}

func (e *env) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("unexpected error: %v", err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected %s, got success", code)
	}
	if got := CodeOf(err); got != code {
		t.Fatalf("expected %s, got %v", code, err)
	}
	if !strings.HasPrefix(err.Error(), code+": ") {
		t.Fatalf("message %q does not start with its code", err.Error())
	}
}

func (e *env) bal(id Identity, asset string) uint64 {
	e.t.Helper()
	var out string
	e.must(e.tx(func(s Stub) (err error) { out, err = e.r.BalanceOf(s, acct(e.t, id), asset); return }))
	v, _ := strconv.ParseUint(out, 10, 64)
	return v
}

// funded returns an initialised ledger where seller holds 1000 BOND and
// buyer holds 5000 USD.
func funded(t *testing.T) *env {
	e := newEnv(t)
	e.must(e.tx(func(s Stub) error { return e.r.InitLedger(s, admin, acct(t, issuerI)) }))
	e.must(e.tx(func(s Stub) error { return e.r.Issue(s, issuerI, acct(t, seller), "BOND", "1000") }))
	e.must(e.tx(func(s Stub) error { return e.r.Issue(s, issuerI, acct(t, buyer), "USD", "5000") }))
	return e
}

var secret = func() []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(i + 1)
	}
	return b
}()

func hashHex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

const nonce = "01020304"

func (e *env) lock(from Identity, to Identity, amount string, hashlock string, expiry time.Time) (string, error) {
	var id string
	err := e.tx(func(s Stub) (err error) {
		id, err = e.r.Lock(s, from, acct(e.t, to), "BOND", amount, hashlock, strconv.FormatInt(expiry.Unix(), 10), nonce)
		return
	})
	return id, err
}

// ---- amounts, init, issuance, transfer ----

func TestParseAmountRejectsNonCanonical(t *testing.T) {
	for _, s := range []string{"", "0", "00", "-1", "+1", " 1", "1 ", "01", "1.5", "1e3", "0x10", "18446744073709551616", "99999999999999999999999"} {
		if _, err := ParseAmount("amount", s); err == nil {
			t.Errorf("accepted %q", s)
		}
	}
	if v, err := ParseAmount("amount", "18446744073709551615"); err != nil || v != math.MaxUint64 {
		t.Fatalf("max uint64: %v %v", v, err)
	}
}

func TestInitOnlyOnceAndOnlyByAdmin(t *testing.T) {
	e := newEnv(t)
	wantCode(t, e.tx(func(s Stub) error { return e.r.Issue(s, issuerI, acct(t, buyer), "USD", "1") }), CodeNotInitialised)
	wantCode(t, e.tx(func(s Stub) error { return e.r.InitLedger(s, mallory, acct(t, mallory)) }), CodeUnauthorized)
	e.must(e.tx(func(s Stub) error { return e.r.InitLedger(s, admin, acct(t, issuerI)) }))
	wantCode(t, e.tx(func(s Stub) error { return e.r.InitLedger(s, admin, acct(t, mallory)) }), CodeAlreadyInitialised)
}

func TestIssueOnlyByIssuer(t *testing.T) {
	e := funded(t)
	wantCode(t, e.tx(func(s Stub) error { return e.r.Issue(s, mallory, acct(t, mallory), "USD", "1") }), CodeUnauthorized)
	// Same CN under another MSP is another account.
	fake := ident("BuyerBankMSP", "Issuer@sellerbank.example.com", "client")
	wantCode(t, e.tx(func(s Stub) error { return e.r.Issue(s, fake, acct(t, fake), "USD", "1") }), CodeUnauthorized)
	// An admin is not the issuer either.
	wantCode(t, e.tx(func(s Stub) error { return e.r.Issue(s, admin, acct(t, admin), "USD", "1") }), CodeUnauthorized)
	wantCode(t, e.tx(func(s Stub) error { return e.r.Issue(s, issuerI, acct(t, buyer), "USD", "0") }), CodeBadArgument)
	wantCode(t, e.tx(func(s Stub) error { return e.r.Issue(s, issuerI, acct(t, buyer), "US\x00D", "1") }), CodeBadArgument)
	if got := e.bal(buyer, "USD"); got != 5000 {
		t.Fatalf("buyer USD %d", got)
	}
}

func TestIssueOverflowRejected(t *testing.T) {
	e := funded(t)
	wantCode(t, e.tx(func(s Stub) error {
		return e.r.Issue(s, issuerI, acct(t, buyer), "USD", strconv.FormatUint(math.MaxUint64-4999, 10))
	}), CodeBadArgument)
}

func TestTransfer(t *testing.T) {
	e := funded(t)
	e.must(e.tx(func(s Stub) error { return e.r.Transfer(s, seller, acct(t, buyer), "BOND", "10") }))
	if e.bal(seller, "BOND") != 990 || e.bal(buyer, "BOND") != 10 {
		t.Fatal("transfer did not move 10 BOND")
	}
	wantCode(t, e.tx(func(s Stub) error { return e.r.Transfer(s, seller, acct(t, buyer), "BOND", "991") }), CodeInsufficientFunds)
	wantCode(t, e.tx(func(s Stub) error { return e.r.Transfer(s, seller, acct(t, seller), "BOND", "1") }), CodeBadArgument)
	wantCode(t, e.tx(func(s Stub) error { return e.r.Transfer(s, seller, acct(t, buyer), "BOND", "0") }), CodeBadArgument)
}

// ---- clock skew (rule 8) ----

func TestClockSkewBounded(t *testing.T) {
	e := funded(t)
	h := hashHex(secret)
	exp := strconv.FormatInt(t0.Add(time.Hour).Unix(), 10)
	for _, skew := range []time.Duration{-31 * time.Second, 31 * time.Second, 24 * time.Hour} {
		err, _ := e.txAt(skew, func(s Stub) error {
			_, err := e.r.Lock(s, seller, acct(t, buyer), "BOND", "1", h, exp, nonce)
			return err
		})
		wantCode(t, err, CodeClockSkew)
		err, _ = e.txAt(skew, func(s Stub) error { return e.r.Transfer(s, seller, acct(t, buyer), "BOND", "1") })
		wantCode(t, err, CodeClockSkew)
	}
	for _, skew := range []time.Duration{-30 * time.Second, 30 * time.Second} {
		err, _ := e.txAt(skew, func(s Stub) error { return e.r.Transfer(s, seller, acct(t, buyer), "BOND", "1") })
		e.must(err)
	}
}

func TestClaimCannotBackdateBeyondSkew(t *testing.T) {
	e := funded(t)
	id, err := e.lock(seller, buyer, "10", hashHex(secret), t0.Add(time.Minute))
	e.must(err)
	e.clock = t0.Add(2 * time.Minute) // expired by the endorser's clock
	err, _ = e.txAt(-90*time.Second, func(s Stub) error { return e.r.Claim(s, id, hex.EncodeToString(secret)) })
	wantCode(t, err, CodeClockSkew)
	err, _ = e.txAt(-30*time.Second, func(s Stub) error { return e.r.Claim(s, id, hex.EncodeToString(secret)) })
	wantCode(t, err, CodeLockExpired)
}

// ---- HTLC lock (rule 7) ----

func TestLockIDCoversEveryTerm(t *testing.T) {
	h := sha256.Sum256(secret)
	base := LockID("a", "b", "BOND", 10, h[:], 100, []byte{1})
	variants := []string{
		LockID("x", "b", "BOND", 10, h[:], 100, []byte{1}),
		LockID("a", "x", "BOND", 10, h[:], 100, []byte{1}),
		LockID("a", "b", "BONX", 10, h[:], 100, []byte{1}),
		LockID("a", "b", "BOND", 11, h[:], 100, []byte{1}),
		LockID("a", "b", "BOND", 10, make([]byte, 32), 100, []byte{1}),
		LockID("a", "b", "BOND", 10, h[:], 101, []byte{1}),
		LockID("a", "b", "BOND", 10, h[:], 100, []byte{2}),
		// Moving bytes between adjacent fields must change the id too.
		LockID("ab", "", "BOND", 10, h[:], 100, []byte{1}),
	}
	seen := map[string]bool{base: true}
	for i, v := range variants {
		if seen[v] {
			t.Fatalf("variant %d collides", i)
		}
		seen[v] = true
	}
	if base != LockID("a", "b", "BOND", 10, h[:], 100, []byte{1}) {
		t.Fatal("lock id is not deterministic")
	}
}

// TestLockIDVector pins the canonical encoding so other implementations
// (the Python adapter's audit) can check theirs against it.
func TestLockIDVector(t *testing.T) {
	h := sha256.Sum256(secret)
	got := LockID("SellerBankMSP::CN=s", "BuyerBankMSP::CN=b", "BOND", 10, h[:], 1_700_000_600, []byte{1, 2, 3, 4})
	enc := LockDomain
	field := func(b []byte) {
		n := len(b)
		enc += string([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}) + string(b)
	}
	field([]byte("SellerBankMSP::CN=s"))
	field([]byte("BuyerBankMSP::CN=b"))
	field([]byte("BOND"))
	field([]byte{0, 0, 0, 0, 0, 0, 0, 10})
	field(h[:])
	field([]byte{0, 0, 0, 0, 0x65, 0x53, 0xf3, 0x58})
	field([]byte{1, 2, 3, 4})
	want := sha256.Sum256([]byte(enc))
	if got != hex.EncodeToString(want[:]) {
		t.Fatalf("lock id %s, want %x", got, want)
	}
}

func TestLockRejectsBadTerms(t *testing.T) {
	e := funded(t)
	h := hashHex(secret)
	later := t0.Add(time.Hour)
	cases := []struct {
		name, amount, hashlock string
		expiry                 time.Time
		to                     Identity
		code                   string
	}{
		{"zero amount", "0", h, later, buyer, CodeBadArgument},
		{"negative amount", "-5", h, later, buyer, CodeBadArgument},
		{"31-byte hashlock", "1", h[:62], later, buyer, CodeBadArgument},
		{"33-byte hashlock", "1", h + "00", later, buyer, CodeBadArgument},
		{"0x hashlock", "1", "0x" + h[2:], later, buyer, CodeBadArgument},
		{"non-hex hashlock", "1", "zz" + h[2:], later, buyer, CodeBadArgument},
		{"expiry now", "1", h, t0, buyer, CodeBadArgument},
		{"expiry past", "1", h, t0.Add(-time.Second), buyer, CodeBadArgument},
		{"to self", "1", h, later, seller, CodeBadArgument},
		{"more than balance", "1001", h, later, buyer, CodeInsufficientFunds},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.lock(seller, c.to, c.amount, c.hashlock, c.expiry)
			wantCode(t, err, c.code)
		})
	}
	// Nonce and expiry encodings.
	for _, bad := range [][2]string{{"0", nonce}, {"-1", nonce}, {"01700003600", nonce}, {"1700003600", ""}, {"1700003600", "0x01"}, {"1700003600", strings.Repeat("00", 65)}} {
		err := e.tx(func(s Stub) error {
			_, err := e.r.Lock(s, seller, acct(t, buyer), "BOND", "1", h, bad[0], bad[1])
			return err
		})
		wantCode(t, err, CodeBadArgument)
	}
	if e.bal(seller, "BOND") != 1000 {
		t.Fatal("a rejected lock moved funds")
	}
}

func TestLockEscrowsAndRejectsDuplicate(t *testing.T) {
	e := funded(t)
	id, err := e.lock(seller, buyer, "10", hashHex(secret), t0.Add(time.Hour))
	e.must(err)
	if e.bal(seller, "BOND") != 990 {
		t.Fatal("lock did not escrow")
	}
	last := e.l.events[len(e.l.events)-1]
	var ev LockEvent
	e.must(json.Unmarshal(last.payload, &ev))
	if last.name != "HtlcLocked" || ev.Lock.ID != id || ev.Lock.Status != StatusLocked || ev.TxID == "" {
		t.Fatalf("bad lock event %s %s", last.name, last.payload)
	}
	_, err = e.lock(seller, buyer, "10", hashHex(secret), t0.Add(time.Hour))
	wantCode(t, err, CodeLockExists)
	if e.bal(seller, "BOND") != 990 {
		t.Fatal("duplicate lock moved funds")
	}
	var l *Lock
	e.must(e.tx(func(s Stub) (err error) { l, err = e.r.GetLock(s, id); return }))
	if l.Sender != acct(t, seller) || l.Recipient != acct(t, buyer) || l.Amount != 10 || l.Hashlock != hashHex(secret) {
		t.Fatalf("stored lock %+v", l)
	}
}

// ---- claim (rules 1, 2, 7) ----

func TestClaimRejectsWrongPreimages(t *testing.T) {
	e := funded(t)
	id, err := e.lock(seller, buyer, "10", hashHex(secret), t0.Add(time.Hour))
	e.must(err)
	wrong := make([]byte, 32)
	long := append(append([]byte{}, secret...), 0)
	for name, pre := range map[string]string{
		"wrong 32 bytes": hex.EncodeToString(wrong),
		"31 bytes":       hex.EncodeToString(secret[:31]),
		"33 bytes":       hex.EncodeToString(long),
		"empty":          "",
		"not hex":        "zz",
		"0x prefix":      "0x" + hex.EncodeToString(secret),
		"hex as text":    hex.EncodeToString([]byte(hex.EncodeToString(secret)))[:64],
	} {
		t.Run(name, func(t *testing.T) {
			wantCode(t, e.tx(func(s Stub) error { return e.r.Claim(s, id, pre) }), CodeInvalidPreimage)
		})
	}
	wantCode(t, e.tx(func(s Stub) error { return e.r.Claim(s, "nope", hex.EncodeToString(secret)) }), CodeLockNotFound)
	if e.bal(buyer, "BOND") != 0 {
		t.Fatal("a rejected claim paid")
	}
}

// A 33-byte preimage whose hash is the hashlock must still be refused.
func TestClaimRejectsOversizedPreimageEvenIfHashMatches(t *testing.T) {
	e := funded(t)
	long := append(append([]byte{}, secret...), 7)
	id, err := e.lock(seller, buyer, "10", hashHex(long), t0.Add(time.Hour))
	e.must(err)
	wantCode(t, e.tx(func(s Stub) error { return e.r.Claim(s, id, hex.EncodeToString(long)) }), CodeInvalidPreimage)
	short := secret[:16]
	id2, err := e.lock(seller, buyer, "10", hashHex(short), t0.Add(2*time.Hour))
	e.must(err)
	wantCode(t, e.tx(func(s Stub) error { return e.r.Claim(s, id2, hex.EncodeToString(short)) }), CodeInvalidPreimage)
}

func TestClaimPaysFixedRecipientWhoeverSubmits(t *testing.T) {
	e := funded(t)
	id, err := e.lock(seller, buyer, "10", hashHex(secret), t0.Add(time.Hour))
	e.must(err)
	// Claim takes no identity at all: mallory submitting changes nothing.
	e.must(e.tx(func(s Stub) error { return e.r.Claim(s, id, strings.ToUpper(hex.EncodeToString(secret))) }))
	if e.bal(buyer, "BOND") != 10 || e.bal(mallory, "BOND") != 0 || e.bal(seller, "BOND") != 990 {
		t.Fatal("claim paid the wrong account")
	}
	var l *Lock
	e.must(e.tx(func(s Stub) (err error) { l, err = e.r.GetLock(s, id); return }))
	if l.Status != StatusClaimed || l.Preimage != hex.EncodeToString(secret) {
		t.Fatalf("after claim %+v", l)
	}
	last := e.l.events[len(e.l.events)-1]
	if last.name != "HtlcClaimed" || !strings.Contains(string(last.payload), hex.EncodeToString(secret)) {
		t.Fatalf("claim event %s %s", last.name, last.payload)
	}
	wantCode(t, e.tx(func(s Stub) error { return e.r.Claim(s, id, hex.EncodeToString(secret)) }), CodeLockNotActive)
	e.clock = t0.Add(2 * time.Hour)
	wantCode(t, e.tx(func(s Stub) error { return e.r.Refund(s, seller, id) }), CodeLockNotActive)
	if e.bal(buyer, "BOND") != 10 || e.bal(seller, "BOND") != 990 {
		t.Fatal("double spend")
	}
}

func TestClaimOnlyBeforeExpiry(t *testing.T) {
	e := funded(t)
	exp := t0.Add(time.Hour)
	id, err := e.lock(seller, buyer, "10", hashHex(secret), exp)
	e.must(err)
	e.clock = exp // at expiry: too late
	wantCode(t, e.tx(func(s Stub) error { return e.r.Claim(s, id, hex.EncodeToString(secret)) }), CodeLockExpired)
	e.clock = exp.Add(-time.Second)
	e.must(e.tx(func(s Stub) error { return e.r.Claim(s, id, hex.EncodeToString(secret)) }))
}

// ---- refund (rule 7) ----

func TestRefundOnlyBySenderAtOrAfterExpiry(t *testing.T) {
	e := funded(t)
	exp := t0.Add(time.Hour)
	id, err := e.lock(seller, buyer, "10", hashHex(secret), exp)
	e.must(err)
	e.clock = exp.Add(-time.Second)
	wantCode(t, e.tx(func(s Stub) error { return e.r.Refund(s, seller, id) }), CodeLockNotExpired)
	e.clock = exp
	wantCode(t, e.tx(func(s Stub) error { return e.r.Refund(s, buyer, id) }), CodeUnauthorized)
	wantCode(t, e.tx(func(s Stub) error { return e.r.Refund(s, mallory, id) }), CodeUnauthorized)
	e.must(e.tx(func(s Stub) error { return e.r.Refund(s, seller, id) }))
	if e.bal(seller, "BOND") != 1000 {
		t.Fatal("refund did not return funds")
	}
	if last := e.l.events[len(e.l.events)-1]; last.name != "HtlcRefunded" {
		t.Fatalf("event %s", last.name)
	}
	wantCode(t, e.tx(func(s Stub) error { return e.r.Refund(s, seller, id) }), CodeLockNotActive)
	wantCode(t, e.tx(func(s Stub) error { return e.r.Claim(s, id, hex.EncodeToString(secret)) }), CodeLockNotActive)
	if e.bal(seller, "BOND") != 1000 || e.bal(buyer, "BOND") != 0 {
		t.Fatal("claim after refund paid")
	}
}

// ---- single-ledger DvP ----

func (e *env) propose(secAmt, cashAmt string, exp time.Time) (string, error) {
	var id string
	err := e.tx(func(s Stub) (err error) {
		id, err = e.r.ProposeOrder(s, seller, acct(e.t, buyer), "BOND", secAmt, "USD", cashAmt, strconv.FormatInt(exp.Unix(), 10), nonce)
		return
	})
	return id, err
}

func TestDvpSettlesBothLegsAtomically(t *testing.T) {
	e := funded(t)
	id, err := e.propose("100", "4000", t0.Add(time.Hour))
	e.must(err)
	_, err = e.propose("100", "4000", t0.Add(time.Hour))
	wantCode(t, err, CodeOrderExists)
	wantCode(t, e.tx(func(s Stub) error { return e.r.AcceptOrder(s, mallory, id) }), CodeUnauthorized)
	wantCode(t, e.tx(func(s Stub) error { return e.r.AcceptOrder(s, seller, id) }), CodeUnauthorized)
	e.must(e.tx(func(s Stub) error { return e.r.AcceptOrder(s, buyer, id) }))
	if e.bal(seller, "BOND") != 900 || e.bal(buyer, "BOND") != 100 || e.bal(buyer, "USD") != 1000 || e.bal(seller, "USD") != 4000 {
		t.Fatal("settlement moved the wrong amounts")
	}
	last := e.l.events[len(e.l.events)-1]
	if last.name != "DvpSettled" {
		t.Fatalf("event %s", last.name)
	}
	wantCode(t, e.tx(func(s Stub) error { return e.r.AcceptOrder(s, buyer, id) }), CodeOrderNotOpen)
	wantCode(t, e.tx(func(s Stub) error { return e.r.CancelOrder(s, seller, id) }), CodeOrderNotOpen)
}

func TestDvpNothingMovesWhenOneLegFails(t *testing.T) {
	e := funded(t)
	id, err := e.propose("100", "5001", t0.Add(time.Hour)) // buyer has 5000 USD
	e.must(err)
	wantCode(t, e.tx(func(s Stub) error { return e.r.AcceptOrder(s, buyer, id) }), CodeInsufficientFunds)
	if e.bal(seller, "BOND") != 1000 || e.bal(buyer, "BOND") != 0 || e.bal(buyer, "USD") != 5000 {
		t.Fatal("a failed settlement moved a leg")
	}
	id2, err := e.propose("1001", "1", t0.Add(time.Hour))
	e.must(err)
	wantCode(t, e.tx(func(s Stub) error { return e.r.AcceptOrder(s, buyer, id2) }), CodeInsufficientFunds)
}

func TestDvpCancelAndExpiry(t *testing.T) {
	e := funded(t)
	_, err := e.propose("0", "1", t0.Add(time.Hour))
	wantCode(t, err, CodeBadArgument)
	_, err = e.propose("1", "1", t0)
	wantCode(t, err, CodeBadArgument)
	id, err := e.propose("1", "1", t0.Add(time.Hour))
	e.must(err)
	wantCode(t, e.tx(func(s Stub) error { return e.r.CancelOrder(s, buyer, id) }), CodeUnauthorized)
	e.must(e.tx(func(s Stub) error { return e.r.CancelOrder(s, seller, id) }))
	wantCode(t, e.tx(func(s Stub) error { return e.r.AcceptOrder(s, buyer, id) }), CodeOrderNotOpen)
	exp := t0.Add(2 * time.Hour)
	var id2 string
	e.must(e.tx(func(s Stub) (err error) {
		id2, err = e.r.ProposeOrder(s, seller, acct(t, buyer), "BOND", "1", "USD", "1", strconv.FormatInt(exp.Unix(), 10), "ff")
		return
	}))
	e.clock = exp
	wantCode(t, e.tx(func(s Stub) error { return e.r.AcceptOrder(s, buyer, id2) }), CodeOrderExpired)
	wantCode(t, e.tx(func(s Stub) error { return e.r.AcceptOrder(s, buyer, "missing") }), CodeOrderNotFound)
}

// Pinned vectors shared with adapters/dvp_fabric/lockid.py (tests/fabric/test_lockid.py).
const (
	vectorLockID  = "1e3b53f89f7d07af831002bac8be04f47b6676546ef4a486b2dc858c3dfe8fdb"
	vectorOrderID = "c0e65a807c82b126e2840a44b60a384211122b218bd7fddc7c6ff4e111abd21f"
)

func TestSharedVectors(t *testing.T) {
	h := sha256.Sum256(secret)
	lid := LockID("SellerBankMSP::CN=s", "BuyerBankMSP::CN=b", "BOND", 10, h[:], 1_700_000_600, []byte{1, 2, 3, 4})
	oid := OrderID("SellerBankMSP::CN=s", "BuyerBankMSP::CN=b", "BOND", 10, "USD", 4000, 1_700_000_600, []byte{1, 2, 3, 4})
	if lid != vectorLockID || oid != vectorOrderID {
		t.Fatalf("lock id %s, order id %s", lid, oid)
	}
}
