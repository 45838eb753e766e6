package dvpcc

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Order statuses.
const (
	OrderOpen      = "OPEN"
	OrderSettled   = "SETTLED"
	OrderCancelled = "CANCELLED"
)

// OrderDomain starts the canonical encoding hashed into an order id.
const OrderDomain = "dvp.fabric.order.v1"

// Order is a single-ledger DvP order: the seller delivers SecAmount of
// SecAsset to the buyer against CashAmount of CashAsset, both legs in the
// buyer's one accepting transaction.
type Order struct {
	ID         string `json:"id"`
	Seller     string `json:"seller"`
	Buyer      string `json:"buyer"`
	SecAsset   string `json:"secAsset"`
	SecAmount  uint64 `json:"secAmount,string"`
	CashAsset  string `json:"cashAsset"`
	CashAmount uint64 `json:"cashAmount,string"`
	Expiry     int64  `json:"expiry"`
	Nonce      string `json:"nonce"`
	Status     string `json:"status"`
	ProposeTx  string `json:"proposeTxId"`
	CloseTx    string `json:"closeTxId,omitempty"`
	CloseTime  int64  `json:"closeTime,omitempty"`
}

// OrderID is hex(SHA-256(OrderDomain || fields)), fields encoded as in
// LockID: seller, buyer, secAsset, secAmount, cashAsset, cashAmount, expiry, nonce.
func OrderID(seller, buyer, secAsset string, secAmount uint64, cashAsset string, cashAmount uint64, expiry int64, nonce []byte) string {
	var buf bytes.Buffer
	buf.WriteString(OrderDomain)
	field := func(b []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		buf.Write(n[:])
		buf.Write(b)
	}
	u64 := func(v uint64) []byte {
		var u [8]byte
		binary.BigEndian.PutUint64(u[:], v)
		return u[:]
	}
	field([]byte(seller))
	field([]byte(buyer))
	field([]byte(secAsset))
	field(u64(secAmount))
	field([]byte(cashAsset))
	field(u64(cashAmount))
	field(u64(uint64(expiry)))
	field(nonce)
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:])
}

func orderKey(id string) string { return key(prefixOrder, id) }

// OrderEvent is the payload of the DvpProposed, DvpSettled and DvpCancelled events.
type OrderEvent struct {
	TxID  string `json:"txId"`
	Order Order  `json:"order"`
}

// ProposeOrder records the caller (seller)'s offer; acceptance is possible
// strictly before expiry.  Nothing is escrowed: the accepting transaction
// moves both legs or neither.
func (r *Rules) ProposeOrder(stub Stub, id Identity, buyer, secAsset, secAmountS, cashAsset, cashAmountS, expiryS, nonceHex string) (string, error) {
	now, seller, err := r.txCaller(stub, id)
	if err != nil {
		return "", err
	}
	for _, f := range [][2]string{{"buyer", buyer}, {"secAsset", secAsset}, {"cashAsset", cashAsset}} {
		if err := checkText(f[0], f[1]); err != nil {
			return "", err
		}
	}
	if buyer == seller {
		return "", fail(CodeBadArgument, "buyer is the seller")
	}
	if secAsset == cashAsset {
		return "", fail(CodeBadArgument, "the two legs use one asset")
	}
	secAmount, err := ParseAmount("secAmount", secAmountS)
	if err != nil {
		return "", err
	}
	cashAmount, err := ParseAmount("cashAmount", cashAmountS)
	if err != nil {
		return "", err
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
	oid := OrderID(seller, buyer, secAsset, secAmount, cashAsset, cashAmount, expiry, nonce)
	existing, err := stub.GetState(orderKey(oid))
	if err != nil {
		return "", fail(CodeInternal, "read state: %v", err)
	}
	if existing != nil {
		return "", fail(CodeOrderExists, "order %s already exists", oid)
	}
	o := Order{
		ID: oid, Seller: seller, Buyer: buyer, SecAsset: secAsset, SecAmount: secAmount,
		CashAsset: cashAsset, CashAmount: cashAmount, Expiry: expiry,
		Nonce: hex.EncodeToString(nonce), Status: OrderOpen, ProposeTx: stub.GetTxID(),
	}
	if err := putJSON(stub, orderKey(oid), o); err != nil {
		return "", err
	}
	if err := emit(stub, "DvpProposed", OrderEvent{TxID: stub.GetTxID(), Order: o}); err != nil {
		return "", err
	}
	return oid, nil
}

func (r *Rules) loadOrder(stub Stub, orderID string) (*Order, error) {
	if err := checkText("orderId", orderID); err != nil {
		return nil, err
	}
	var o Order
	found, err := getJSON(stub, orderKey(orderID), &o)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fail(CodeOrderNotFound, "no order %s", orderID)
	}
	return &o, nil
}

// AcceptOrder settles an open order: only its buyer may call it, strictly
// before expiry; securities go to the buyer and cash to the seller in this
// one transaction, or the transaction fails and nothing moves.
func (r *Rules) AcceptOrder(stub Stub, id Identity, orderID string) error {
	now, caller, err := r.txCaller(stub, id)
	if err != nil {
		return err
	}
	o, err := r.loadOrder(stub, orderID)
	if err != nil {
		return err
	}
	if o.Status != OrderOpen {
		return fail(CodeOrderNotOpen, "order %s is %s", orderID, o.Status)
	}
	if caller != o.Buyer {
		return fail(CodeUnauthorized, "only the buyer may accept order %s", orderID)
	}
	if now.Unix() >= o.Expiry {
		return fail(CodeOrderExpired, "order %s expired at %d", orderID, o.Expiry)
	}
	if err := debit(stub, o.SecAsset, o.Seller, o.SecAmount); err != nil {
		return err
	}
	if err := debit(stub, o.CashAsset, o.Buyer, o.CashAmount); err != nil {
		return err
	}
	if err := credit(stub, o.SecAsset, o.Buyer, o.SecAmount); err != nil {
		return err
	}
	if err := credit(stub, o.CashAsset, o.Seller, o.CashAmount); err != nil {
		return err
	}
	o.Status = OrderSettled
	o.CloseTx = stub.GetTxID()
	o.CloseTime = now.Unix()
	if err := putJSON(stub, orderKey(orderID), o); err != nil {
		return err
	}
	return emit(stub, "DvpSettled", OrderEvent{TxID: stub.GetTxID(), Order: *o})
}

// CancelOrder withdraws an open order; only its seller may call it.
func (r *Rules) CancelOrder(stub Stub, id Identity, orderID string) error {
	now, caller, err := r.txCaller(stub, id)
	if err != nil {
		return err
	}
	o, err := r.loadOrder(stub, orderID)
	if err != nil {
		return err
	}
	if o.Status != OrderOpen {
		return fail(CodeOrderNotOpen, "order %s is %s", orderID, o.Status)
	}
	if caller != o.Seller {
		return fail(CodeUnauthorized, "only the seller may cancel order %s", orderID)
	}
	o.Status = OrderCancelled
	o.CloseTx = stub.GetTxID()
	o.CloseTime = now.Unix()
	if err := putJSON(stub, orderKey(orderID), o); err != nil {
		return err
	}
	return emit(stub, "DvpCancelled", OrderEvent{TxID: stub.GetTxID(), Order: *o})
}

// GetOrder returns an order.
func (r *Rules) GetOrder(stub Stub, orderID string) (*Order, error) {
	return r.loadOrder(stub, orderID)
}
