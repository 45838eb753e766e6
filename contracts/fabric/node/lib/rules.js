'use strict';
/*
 * The rules of the dvp chaincode: fungible balances per client identity,
 * issuance by one configured issuer, hashed time-locked contracts (HTLC) and
 * single-ledger delivery-versus-payment orders.
 *
 * Written against two small seams so the rules run unchanged in memory
 * (test/) and on a peer (contract.js):
 *   stub    the subset of fabric-shim's ChaincodeStub used here: getState,
 *           putState, getTxID, getTxTimestamp, setEvent, createCompositeKey;
 *   caller  {account, admin} of the submitting identity (identity.js).
 *
 * Every error thrown to a client starts with a stable code
 * ("DVP_LOCK_EXPIRED: ...") so an adapter maps it without parsing prose.
 */

const crypto = require('node:crypto');

const Code = Object.freeze({
    BadArgument: 'DVP_BAD_ARGUMENT',
    Unauthorized: 'DVP_UNAUTHORIZED',
    InsufficientFunds: 'DVP_INSUFFICIENT_FUNDS',
    ClockSkew: 'DVP_CLOCK_SKEW',
    LockExists: 'DVP_LOCK_EXISTS',
    LockNotFound: 'DVP_LOCK_NOT_FOUND',
    LockNotActive: 'DVP_LOCK_NOT_ACTIVE',
    LockExpired: 'DVP_LOCK_EXPIRED',
    LockNotExpired: 'DVP_LOCK_NOT_EXPIRED',
    InvalidPreimage: 'DVP_INVALID_PREIMAGE',
    OrderExists: 'DVP_ORDER_EXISTS',
    OrderNotFound: 'DVP_ORDER_NOT_FOUND',
    OrderNotOpen: 'DVP_ORDER_NOT_OPEN',
    OrderExpired: 'DVP_ORDER_EXPIRED',
    NotInitialised: 'DVP_NOT_INITIALISED',
    AlreadyInitialised: 'DVP_ALREADY_INITIALISED',
    Internal: 'DVP_INTERNAL',
});

class DvpError extends Error {
    constructor(code, msg) {
        super(`${code}: ${msg}`);
        this.code = code;
    }
}

function fail(code, msg) {
    return new DvpError(code, msg);
}

const LOCK_DOMAIN = 'dvp.fabric.htlc.v1';
const ORDER_DOMAIN = 'dvp.fabric.order.v1';
const PREIMAGE_SIZE = 32; // docs/design.md, rule 1: the only accepted preimage length
const DEFAULT_MAX_SKEW_SECONDS = 30; // docs/design.md, rule 8
const MAX_U64 = (1n << 64n) - 1n;
const MAX_TEXT = 1024;
const MAX_NONCE = 64;

const LockStatus = Object.freeze({Locked: 'LOCKED', Claimed: 'CLAIMED', Refunded: 'REFUNDED'});
const OrderStatus = Object.freeze({Open: 'OPEN', Settled: 'SETTLED', Cancelled: 'CANCELLED'});

// ---------------------------------------------------------------- encodings

function u64be(v) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(v));
    return b;
}

function field(b) {
    const n = Buffer.alloc(4);
    n.writeUInt32BE(b.length);
    return Buffer.concat([n, b]);
}

function sha256Hex(...parts) {
    return crypto.createHash('sha256').update(Buffer.concat(parts)).digest('hex');
}

/** hex(SHA-256(domain || f(sender) || f(recipient) || f(asset) || f(u64be(amount)) ||
 *  f(hashlock) || f(u64be(expiry)) || f(nonce))), f(x) = u32be(len(x)) || x. */
function lockId(sender, recipient, asset, amount, hashlock, expiry, nonce) {
    return sha256Hex(Buffer.from(LOCK_DOMAIN), ...[
        Buffer.from(sender), Buffer.from(recipient), Buffer.from(asset), u64be(amount),
        hashlock, u64be(expiry), nonce,
    ].map(field));
}

/** The lock id scheme with domain dvp.fabric.order.v1 over seller, buyer, secAsset,
 *  secAmount, cashAsset, cashAmount, expiry, nonce. */
function orderId(seller, buyer, secAsset, secAmount, cashAsset, cashAmount, expiry, nonce) {
    return sha256Hex(Buffer.from(ORDER_DOMAIN), ...[
        Buffer.from(seller), Buffer.from(buyer), Buffer.from(secAsset), u64be(secAmount),
        Buffer.from(cashAsset), u64be(cashAmount), u64be(expiry), nonce,
    ].map(field));
}

// ---------------------------------------------------------------- argument parsing

/** A positive canonical decimal amount up to 2^64-1, as a BigInt. */
function parseAmount(name, s) {
    if (typeof s !== 'string' || !/^[1-9][0-9]{0,19}$/.test(s)) {
        throw fail(Code.BadArgument, `${name} ${JSON.stringify(s)} is not a canonical decimal amount above zero`);
    }
    const v = BigInt(s);
    if (v > MAX_U64) {
        throw fail(Code.BadArgument, `${name} ${JSON.stringify(s)} is out of range`);
    }
    return v;
}

/** Canonical positive unix seconds; capped at 2^53-1 so the JSON number stays exact. */
function parseUnix(name, s) {
    if (typeof s !== 'string' || !/^[1-9][0-9]{0,15}$/.test(s) || Number(s) > Number.MAX_SAFE_INTEGER) {
        throw fail(Code.BadArgument, `${name} ${JSON.stringify(s)} is not canonical positive unix seconds`);
    }
    return Number(s);
}

/** Lower- or upper-case hex without a 0x prefix. */
function decodeHex(name, s) {
    if (typeof s !== 'string' || /^0[xX]/.test(s)) {
        throw fail(Code.BadArgument, `${name} must be plain hex without 0x`);
    }
    if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) {
        throw fail(Code.BadArgument, `${name} is not hex`);
    }
    return Buffer.from(s, 'hex');
}

function decodeNonce(s) {
    const nonce = decodeHex('nonce', s);
    if (nonce.length === 0 || nonce.length > MAX_NONCE) {
        throw fail(Code.BadArgument, `nonce is ${nonce.length} bytes, must be 1 to ${MAX_NONCE}`);
    }
    return nonce;
}

/** Rejects empty strings, NUL (composite keys use it) and overlong values. */
function checkText(name, v) {
    if (typeof v !== 'string' || v === '') {
        throw fail(Code.BadArgument, `${name} is empty`);
    }
    if (Buffer.byteLength(v) > MAX_TEXT) {
        throw fail(Code.BadArgument, `${name} is longer than ${MAX_TEXT} bytes`);
    }
    if (v.includes('\u0000') || v.includes('\u{10FFFF}')) {
        throw fail(Code.BadArgument, `${name} contains NUL or U+10FFFF`);
    }
}

// ---------------------------------------------------------------- state

/**
 * One transaction's view of the world state.  Fabric does not let a
 * transaction read its own writes, so writes are kept here as well: a rule
 * that credits then debits one key sees its own balance.
 */
class TxState {
    constructor(stub) {
        this.stub = stub;
        this.writes = new Map();
    }

    key(type, ...parts) {
        return this.stub.createCompositeKey(type, parts);
    }

    async getJSON(k) {
        let raw = this.writes.get(k);
        if (raw === undefined) {
            raw = await this.stub.getState(k);
        }
        if (!raw || raw.length === 0) {
            return null;
        }
        try {
            return JSON.parse(Buffer.from(raw).toString('utf8'));
        } catch (err) {
            throw fail(Code.Internal, `decode state: ${err.message}`);
        }
    }

    async putJSON(k, v) {
        const raw = Buffer.from(JSON.stringify(v));
        this.writes.set(k, raw);
        await this.stub.putState(k, raw);
    }

    emit(name, payload) {
        this.stub.setEvent(name, Buffer.from(JSON.stringify(payload)));
    }
}

const ISSUER_KEY = ['meta', 'issuer'];
// State key type per stored object; the object's name is also its field in the event payload.
const KEY_TYPE = Object.freeze({lock: 'htlc', order: 'order'});

/** Closes a lock or an order in this transaction: its final fields, the closing tx and time,
 *  written back and announced by event ``{txId, lock|order}``. */
async function close(st, stub, now, kind, obj, fields, event) {
    Object.assign(obj, fields, {closeTxId: stub.getTxID(), closeTime: now});
    await st.putJSON(st.key(KEY_TYPE[kind], obj.id), obj);
    st.emit(event, {txId: stub.getTxID(), [kind]: obj});
}

class Rules {
    /**
     * @param {object} [opts]
     * @param {number} [opts.maxSkewSeconds] largest accepted |tx timestamp - endorser clock|
     * @param {() => number} [opts.now] the endorser's clock in milliseconds (Date.now)
     */
    constructor({maxSkewSeconds = DEFAULT_MAX_SKEW_SECONDS, now = Date.now} = {}) {
        if (!(Number.isInteger(maxSkewSeconds) && maxSkewSeconds > 0)) {
            throw new Error(`max skew ${maxSkewSeconds} is not a positive integer of seconds`);
        }
        this.maxSkewSeconds = maxSkewSeconds;
        this.now = now;
    }

    /**
     * The proposal's timestamp in whole unix seconds, after checking it strays
     * at most maxSkewSeconds from the endorser's clock (docs/design.md, rule 8).  Expiry is
     * judged on it, so a submitter moves it by at most the skew.
     */
    txTime(stub) {
        const ts = stub.getTxTimestamp();
        const seconds = ts && ts.seconds !== undefined ? Number(ts.seconds.toString()) : NaN;
        const nanos = ts ? Number(ts.nanos || 0) : NaN;
        if (!Number.isFinite(seconds) || !Number.isFinite(nanos) || nanos < 0 || nanos >= 1e9) {
            throw fail(Code.BadArgument, 'invalid transaction timestamp');
        }
        const txMs = seconds * 1000 + nanos / 1e6;
        const nowMs = this.now();
        const skewMs = Math.abs(txMs - nowMs);
        if (skewMs > this.maxSkewSeconds * 1000) {
            throw fail(Code.ClockSkew,
                `transaction timestamp ${new Date(txMs).toISOString()} is ${(skewMs / 1000).toFixed(3)}s away ` +
                `from the endorser's clock ${new Date(nowMs).toISOString()} (max ${this.maxSkewSeconds}s)`);
        }
        return seconds;
    }

    // ---- balances

    async balance(st, asset, account) {
        const b = await st.getJSON(st.key('bal', asset, account));
        return b ? BigInt(b.amount) : 0n;
    }

    async credit(st, asset, account, amount) {
        const cur = await this.balance(st, asset, account);
        if (cur + amount > MAX_U64) {
            throw fail(Code.BadArgument, `balance of ${account} in ${asset} would overflow`);
        }
        await st.putJSON(st.key('bal', asset, account), {amount: (cur + amount).toString()});
    }

    async debit(st, asset, account, amount) {
        const cur = await this.balance(st, asset, account);
        if (cur < amount) {
            throw fail(Code.InsufficientFunds, `${account} holds ${cur} ${asset}, needs ${amount}`);
        }
        await st.putJSON(st.key('bal', asset, account), {amount: (cur - amount).toString()});
    }

    // ---- set-up and tokens

    /** Names the issuer account, once; only an organisation admin (cert OU "admin"). */
    async initLedger(stub, caller, issuer) {
        this.txTime(stub);
        checkText('issuer', issuer);
        if (!caller.admin) {
            throw fail(Code.Unauthorized, 'only an organisation admin may initialise the ledger');
        }
        const st = new TxState(stub);
        if (await st.getJSON(st.key(...ISSUER_KEY))) {
            throw fail(Code.AlreadyInitialised, 'the issuer is already set');
        }
        await st.putJSON(st.key(...ISSUER_KEY), {issuer});
    }

    async issuer(stub) {
        const st = new TxState(stub);
        const meta = await st.getJSON(st.key(...ISSUER_KEY));
        if (!meta) {
            throw fail(Code.NotInitialised, 'InitLedger has not run');
        }
        return meta.issuer;
    }

    /** Mints amount of asset to recipient; only the issuer. */
    async issue(stub, caller, recipient, asset, amountS) {
        this.txTime(stub);
        if (caller.account !== await this.issuer(stub)) {
            throw fail(Code.Unauthorized, 'only the issuer may issue');
        }
        checkText('recipient', recipient);
        checkText('asset', asset);
        const amount = parseAmount('amount', amountS);
        const st = new TxState(stub);
        await this.credit(st, asset, recipient, amount);
        st.emit('Issued', {txId: stub.getTxID(), recipient, asset, amount: amount.toString()});
    }

    /** Moves amount of asset from the caller to recipient. */
    async transfer(stub, caller, recipient, asset, amountS) {
        this.txTime(stub);
        checkText('recipient', recipient);
        checkText('asset', asset);
        const amount = parseAmount('amount', amountS);
        if (recipient === caller.account) {
            throw fail(Code.BadArgument, 'recipient is the caller');
        }
        const st = new TxState(stub);
        await this.debit(st, asset, caller.account, amount);
        await this.credit(st, asset, recipient, amount);
        st.emit('Transferred', {txId: stub.getTxID(), sender: caller.account, recipient, asset, amount: amount.toString()});
    }

    async balanceOf(stub, account, asset) {
        checkText('account', account);
        checkText('asset', asset);
        return (await this.balance(new TxState(stub), asset, account)).toString();
    }

    // ---- HTLC

    /** Escrows amount of asset from the caller for recipient under hashlock until
     *  expiry; returns the lock id derived from every term.  Event HtlcLocked. */
    async lock(stub, caller, recipient, asset, amountS, hashlockHex, expiryS, nonceHex) {
        const now = this.txTime(stub);
        const sender = caller.account;
        checkText('recipient', recipient);
        checkText('asset', asset);
        if (recipient === sender) {
            throw fail(Code.BadArgument, 'recipient is the sender');
        }
        const amount = parseAmount('amount', amountS);
        const hashlock = decodeHex('hashlock', hashlockHex);
        if (hashlock.length !== 32) {
            throw fail(Code.BadArgument, `hashlock is ${hashlock.length} bytes, must be 32`);
        }
        const expiry = parseUnix('expiry', expiryS);
        if (expiry <= now) {
            throw fail(Code.BadArgument, `expiry ${expiry} is not after the transaction time ${now}`);
        }
        const nonce = decodeNonce(nonceHex);
        const id = lockId(sender, recipient, asset, amount, hashlock, expiry, nonce);
        const st = new TxState(stub);
        const k = st.key(KEY_TYPE.lock, id);
        if (await st.getJSON(k)) {
            throw fail(Code.LockExists, `lock ${id} already exists`);
        }
        await this.debit(st, asset, sender, amount);
        const lock = {
            id, sender, recipient, asset, amount: amount.toString(), hashlock: hashlock.toString('hex'),
            expiry, nonce: nonce.toString('hex'), status: LockStatus.Locked,
            lockTxId: stub.getTxID(), lockTime: now,
        };
        await st.putJSON(k, lock);
        st.emit('HtlcLocked', {txId: stub.getTxID(), lock});
        return id;
    }

    async loadLock(st, id) {
        checkText('lockId', id);
        const lock = await st.getJSON(st.key(KEY_TYPE.lock, id));
        if (!lock) {
            throw fail(Code.LockNotFound, `no lock ${id}`);
        }
        return lock;
    }

    /** A lock that is neither claimed nor refunded (no double claim, no claim after refund). */
    async activeLock(st, id) {
        const lock = await this.loadLock(st, id);
        if (lock.status !== LockStatus.Locked) {
            throw fail(Code.LockNotActive, `lock ${id} is ${lock.status}`);
        }
        return lock;
    }

    /** Pays a lock to its fixed recipient, whoever submits the 32-byte preimage
     *  whose SHA-256 over the raw bytes is the hashlock, strictly before expiry.
     *  Event HtlcClaimed (carries the preimage). */
    async claim(stub, id, preimageHex) {
        const now = this.txTime(stub);
        const st = new TxState(stub);
        const lock = await this.activeLock(st, id);
        if (now >= lock.expiry) {
            throw fail(Code.LockExpired, `lock ${id} expired at ${lock.expiry}, transaction time ${now}`);
        }
        let pre;
        try {
            pre = decodeHex('preimage', preimageHex);
        } catch {
            throw fail(Code.InvalidPreimage, 'preimage is not hex');
        }
        if (pre.length !== PREIMAGE_SIZE) {
            throw fail(Code.InvalidPreimage, `preimage is ${pre.length} bytes, must be ${PREIMAGE_SIZE}`);
        }
        if (sha256Hex(pre) !== lock.hashlock) {
            throw fail(Code.InvalidPreimage, 'SHA-256 of the preimage does not match the hashlock');
        }
        await this.credit(st, lock.asset, lock.recipient, BigInt(lock.amount));
        await close(st, stub, now, 'lock', lock, {status: LockStatus.Claimed, preimage: pre.toString('hex')}, 'HtlcClaimed');
    }

    /** Returns a lock to its sender: only the sender, at or after expiry.  Event HtlcRefunded. */
    async refund(stub, caller, id) {
        const now = this.txTime(stub);
        const st = new TxState(stub);
        const lock = await this.activeLock(st, id);
        if (caller.account !== lock.sender) {
            throw fail(Code.Unauthorized, `only the sender may refund lock ${id}`);
        }
        if (now < lock.expiry) {
            throw fail(Code.LockNotExpired, `lock ${id} expires at ${lock.expiry}, transaction time ${now}`);
        }
        await this.credit(st, lock.asset, lock.sender, BigInt(lock.amount));
        await close(st, stub, now, 'lock', lock, {status: LockStatus.Refunded}, 'HtlcRefunded');
    }

    async getLock(stub, id) {
        return this.loadLock(new TxState(stub), id);
    }

    // ---- single-ledger DvP

    /** Records the caller (seller)'s offer; nothing is escrowed: the buyer's one
     *  accepting transaction moves both legs or neither.  Event DvpProposed. */
    async proposeOrder(stub, caller, buyer, secAsset, secAmountS, cashAsset, cashAmountS, expiryS, nonceHex) {
        const now = this.txTime(stub);
        const seller = caller.account;
        checkText('buyer', buyer);
        checkText('secAsset', secAsset);
        checkText('cashAsset', cashAsset);
        if (buyer === seller) {
            throw fail(Code.BadArgument, 'buyer is the seller');
        }
        if (secAsset === cashAsset) {
            throw fail(Code.BadArgument, 'the two legs use one asset');
        }
        const secAmount = parseAmount('secAmount', secAmountS);
        const cashAmount = parseAmount('cashAmount', cashAmountS);
        const expiry = parseUnix('expiry', expiryS);
        if (expiry <= now) {
            throw fail(Code.BadArgument, `expiry ${expiry} is not after the transaction time ${now}`);
        }
        const nonce = decodeNonce(nonceHex);
        const id = orderId(seller, buyer, secAsset, secAmount, cashAsset, cashAmount, expiry, nonce);
        const st = new TxState(stub);
        const k = st.key(KEY_TYPE.order, id);
        if (await st.getJSON(k)) {
            throw fail(Code.OrderExists, `order ${id} already exists`);
        }
        const order = {
            id, seller, buyer, secAsset, secAmount: secAmount.toString(), cashAsset,
            cashAmount: cashAmount.toString(), expiry, nonce: nonce.toString('hex'),
            status: OrderStatus.Open, proposeTxId: stub.getTxID(),
        };
        await st.putJSON(k, order);
        st.emit('DvpProposed', {txId: stub.getTxID(), order});
        return id;
    }

    async loadOrder(st, id) {
        checkText('orderId', id);
        const order = await st.getJSON(st.key(KEY_TYPE.order, id));
        if (!order) {
            throw fail(Code.OrderNotFound, `no order ${id}`);
        }
        return order;
    }

    async openOrder(st, id) {
        const order = await this.loadOrder(st, id);
        if (order.status !== OrderStatus.Open) {
            throw fail(Code.OrderNotOpen, `order ${id} is ${order.status}`);
        }
        return order;
    }

    /** Settles an open order: only its buyer, strictly before expiry; both legs in
     *  this one transaction or none.  Event DvpSettled. */
    async acceptOrder(stub, caller, id) {
        const now = this.txTime(stub);
        const st = new TxState(stub);
        const o = await this.openOrder(st, id);
        if (caller.account !== o.buyer) {
            throw fail(Code.Unauthorized, `only the buyer may accept order ${id}`);
        }
        if (now >= o.expiry) {
            throw fail(Code.OrderExpired, `order ${id} expired at ${o.expiry}`);
        }
        const sec = BigInt(o.secAmount);
        const cash = BigInt(o.cashAmount);
        await this.debit(st, o.secAsset, o.seller, sec);
        await this.debit(st, o.cashAsset, o.buyer, cash);
        await this.credit(st, o.secAsset, o.buyer, sec);
        await this.credit(st, o.cashAsset, o.seller, cash);
        await close(st, stub, now, 'order', o, {status: OrderStatus.Settled}, 'DvpSettled');
    }

    /** Withdraws an open order; only its seller.  Event DvpCancelled. */
    async cancelOrder(stub, caller, id) {
        const now = this.txTime(stub);
        const st = new TxState(stub);
        const o = await this.openOrder(st, id);
        if (caller.account !== o.seller) {
            throw fail(Code.Unauthorized, `only the seller may cancel order ${id}`);
        }
        await close(st, stub, now, 'order', o, {status: OrderStatus.Cancelled}, 'DvpCancelled');
    }

    async getOrder(stub, id) {
        return this.loadOrder(new TxState(stub), id);
    }
}

module.exports = {
    Code, DvpError, Rules, LockStatus, OrderStatus, lockId, orderId, parseAmount,
    DEFAULT_MAX_SKEW_SECONDS, PREIMAGE_SIZE,
};
