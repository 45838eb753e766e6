package dvpcc

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
)

// Lock statuses.
const (
	StatusLocked   = "LOCKED"
	StatusClaimed  = "CLAIMED"
	StatusRefunded = "REFUNDED"
)

// LockDomain starts the canonical encoding hashed into a lock id.
const LockDomain = "dvp.fabric.htlc.v1"

// PreimageSize is the only accepted preimage length (HTLC security rule 1).
const PreimageSize = 32

// Lock is an HTLC as stored on the ledger and returned by GetLock.
type Lock struct {
	ID        string `json:"id"`
	Sender    string `json:"sender"`
	Recipient string `json:"recipient"`
	Asset     string `json:"asset"`
	Amount    uint64 `json:"amount,string"`
	Hashlock  string `json:"hashlock"`
	Expiry    int64  `json:"expiry"`
	Nonce     string `json:"nonce"`
	Status    string `json:"status"`
	Preimage  string `json:"preimage,omitempty"`
	LockTxID  string `json:"lockTxId"`
	LockTime  int64  `json:"lockTime"`
	CloseTxID string `json:"closeTxId,omitempty"`
	CloseTime int64  `json:"closeTime,omitempty"`
}

// LockID derives a lock id from all the terms: hex(SHA-256(enc)) where enc is
// LockDomain followed by each field as a 4-byte big-endian length and its
// bytes, in this order: sender, recipient, asset (UTF-8), amount (8-byte
// big-endian), hashlock (32 raw bytes), expiry (8-byte big-endian unix
// seconds), nonce (raw bytes).
func LockID(sender, recipient, asset string, amount uint64, hashlock []byte, expiry int64, nonce []byte) string {
	var buf bytes.Buffer
	buf.WriteString(LockDomain)
	field := func(b []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		buf.Write(n[:])
		buf.Write(b)
	}
	var u [8]byte
	field([]byte(sender))
	field([]byte(recipient))
	field([]byte(asset))
	binary.BigEndian.PutUint64(u[:], amount)
	field(u[:])
	field(hashlock)
	binary.BigEndian.PutUint64(u[:], uint64(expiry))
	field(u[:])
	field(nonce)
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:])
}

// decodeHex decodes lower- or upper-case hex, rejecting any "0x" prefix.
func decodeHex(field, s string) ([]byte, error) {
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		return nil, fail(CodeBadArgument, "%s must be plain hex without 0x", field)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fail(CodeBadArgument, "%s is not hex: %v", field, err)
	}
	return b, nil
}

func parseUnix(field, s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || strconv.FormatInt(v, 10) != s {
		return 0, fail(CodeBadArgument, "%s %q is not canonical positive unix seconds", field, s)
	}
	return v, nil
}

func lockKey(id string) string { return key(prefixLock, id) }

// LockEvent is the payload of the HtlcLocked, HtlcClaimed and HtlcRefunded events.
type LockEvent struct {
	TxID string `json:"txId"`
	Lock Lock   `json:"lock"`
}

// Lock escrows amount of asset from the caller for recipient under hashlock
// until expiry (unix seconds, judged on transaction timestamps).  It returns
// the lock id derived from the terms.
func (r *Rules) Lock(stub Stub, id Identity, recipient, asset, amountS, hashlockHex, expiryS, nonceHex string) (string, error) {
	now, sender, err := r.txCaller(stub, id)
	if err != nil {
		return "", err
	}
	if err := checkText("recipient", recipient); err != nil {
		return "", err
	}
	if err := checkText("asset", asset); err != nil {
		return "", err
	}
	if recipient == sender {
		return "", fail(CodeBadArgument, "recipient is the sender")
	}
	amount, err := ParseAmount("amount", amountS)
	if err != nil {
		return "", err
	}
	hashlock, err := decodeHex("hashlock", hashlockHex)
	if err != nil {
		return "", err
	}
	if len(hashlock) != sha256.Size {
		return "", fail(CodeBadArgument, "hashlock is %d bytes, must be %d", len(hashlock), sha256.Size)
	}
	expiry, err := parseUnix("expiry", expiryS)
	if err != nil {
		return "", err
	}
	if expiry <= now.Unix() {
		return "", fail(CodeBadArgument, "expiry %d is not after the transaction time %d", expiry, now.Unix())
	}
	nonce, err := decodeHex("nonce", nonceHex)
	if err != nil {
		return "", err
	}
	if len(nonce) == 0 || len(nonce) > 64 {
		return "", fail(CodeBadArgument, "nonce is %d bytes, must be 1 to 64", len(nonce))
	}
	lockID := LockID(sender, recipient, asset, amount, hashlock, expiry, nonce)
	existing, err := stub.GetState(lockKey(lockID))
	if err != nil {
		return "", fail(CodeInternal, "read state: %v", err)
	}
	if existing != nil {
		return "", fail(CodeLockExists, "lock %s already exists", lockID)
	}
	if err := debit(stub, asset, sender, amount); err != nil {
		return "", err
	}
	l := Lock{
		ID: lockID, Sender: sender, Recipient: recipient, Asset: asset, Amount: amount,
		Hashlock: hex.EncodeToString(hashlock), Expiry: expiry, Nonce: hex.EncodeToString(nonce),
		Status: StatusLocked, LockTxID: stub.GetTxID(), LockTime: now.Unix(),
	}
	if err := putJSON(stub, lockKey(lockID), l); err != nil {
		return "", err
	}
	if err := emit(stub, "HtlcLocked", LockEvent{TxID: stub.GetTxID(), Lock: l}); err != nil {
		return "", err
	}
	return lockID, nil
}

func (r *Rules) loadLock(stub Stub, lockID string) (*Lock, error) {
	if err := checkText("lockId", lockID); err != nil {
		return nil, err
	}
	var l Lock
	found, err := getJSON(stub, lockKey(lockID), &l)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fail(CodeLockNotFound, "no lock %s", lockID)
	}
	return &l, nil
}

// Claim pays a lock to its fixed recipient, whoever submits the preimage,
// strictly before expiry.  The preimage is 32 bytes in hex and its SHA-256
// over the raw bytes must equal the hashlock.
func (r *Rules) Claim(stub Stub, lockID, preimageHex string) error {
	now, err := r.txTime(stub)
	if err != nil {
		return err
	}
	l, err := r.loadLock(stub, lockID)
	if err != nil {
		return err
	}
	if l.Status != StatusLocked {
		return fail(CodeLockNotActive, "lock %s is %s", lockID, l.Status)
	}
	if now.Unix() >= l.Expiry {
		return fail(CodeLockExpired, "lock %s expired at %d, transaction time %d", lockID, l.Expiry, now.Unix())
	}
	pre, err := decodeHex("preimage", preimageHex)
	if err != nil {
		return fail(CodeInvalidPreimage, "preimage is not hex")
	}
	if len(pre) != PreimageSize {
		return fail(CodeInvalidPreimage, "preimage is %d bytes, must be %d", len(pre), PreimageSize)
	}
	sum := sha256.Sum256(pre)
	if hex.EncodeToString(sum[:]) != l.Hashlock {
		return fail(CodeInvalidPreimage, "SHA-256 of the preimage does not match the hashlock")
	}
	if err := credit(stub, l.Asset, l.Recipient, l.Amount); err != nil {
		return err
	}
	l.Status = StatusClaimed
	l.Preimage = hex.EncodeToString(pre)
	l.CloseTxID = stub.GetTxID()
	l.CloseTime = now.Unix()
	if err := putJSON(stub, lockKey(lockID), l); err != nil {
		return err
	}
	return emit(stub, "HtlcClaimed", LockEvent{TxID: stub.GetTxID(), Lock: *l})
}

// Refund returns a lock to its sender; only the sender may call it, and only
// at or after expiry.
func (r *Rules) Refund(stub Stub, id Identity, lockID string) error {
	now, caller, err := r.txCaller(stub, id)
	if err != nil {
		return err
	}
	l, err := r.loadLock(stub, lockID)
	if err != nil {
		return err
	}
	if l.Status != StatusLocked {
		return fail(CodeLockNotActive, "lock %s is %s", lockID, l.Status)
	}
	if caller != l.Sender {
		return fail(CodeUnauthorized, "only the sender may refund lock %s", lockID)
	}
	if now.Unix() < l.Expiry {
		return fail(CodeLockNotExpired, "lock %s expires at %d, transaction time %d", lockID, l.Expiry, now.Unix())
	}
	if err := credit(stub, l.Asset, l.Sender, l.Amount); err != nil {
		return err
	}
	l.Status = StatusRefunded
	l.CloseTxID = stub.GetTxID()
	l.CloseTime = now.Unix()
	if err := putJSON(stub, lockKey(lockID), l); err != nil {
		return err
	}
	return emit(stub, "HtlcRefunded", LockEvent{TxID: stub.GetTxID(), Lock: *l})
}

// GetLock returns a lock as JSON.
func (r *Rules) GetLock(stub Stub, lockID string) (*Lock, error) {
	return r.loadLock(stub, lockID)
}
