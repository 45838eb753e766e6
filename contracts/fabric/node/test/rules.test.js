'use strict';
// The chaincode's rules on an in-memory ledger; each rule is shown by an attempt to break it.
// The same rules are tried on a real network in tests/fabric/test_chaincode_rules.py.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const {Rules, Code, lockId, orderId, parseAmount} = require('../lib/rules');
const {MemLedger} = require('./memledger');

const T0 = 1_700_000_000_000; // ms
const id = (msp, cn, ou = 'client') => ({account: `${msp}::CN=${cn},OU=${ou},C=US`, admin: ou === 'admin'});
const admin = id('SellerBankMSP', 'Admin@sellerbank', 'admin');
const issuer = id('SellerBankMSP', 'Issuer@sellerbank');
const seller = id('SellerBankMSP', 'User1@sellerbank');
const buyer = id('BuyerBankMSP', 'User1@buyerbank');
const mallory = id('BuyerBankMSP', 'Mallory@buyerbank');
const SECRET = Buffer.from(Array.from({length: 32}, (_, i) => i + 1));
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
const NONCE = '01020304';
const unix = (ms) => String(Math.floor(ms / 1000));

/** One ledger and an endorser clock the test moves. */
class Env {
    constructor() {
        this.ledger = new MemLedger();
        this.clock = T0;
        this.rules = new Rules({now: () => this.clock});
    }

    tx(fn, skewMs = 0) {
        return this.ledger.tx(this.clock + skewMs, (s) => fn(this.rules, s));
    }

    async bal(who, asset) {
        return BigInt(await this.tx((r, s) => r.balanceOf(s, who.account, asset)));
    }

    lock(from, to, amount, hashlock, expiryMs, nonce = NONCE) {
        return this.tx((r, s) => r.lock(s, from, to.account, 'BOND', amount, hashlock, unix(expiryMs), nonce));
    }

    propose(secAmount, cashAmount, expiryMs, nonce = NONCE) {
        return this.tx((r, s) => r.proposeOrder(s, seller, buyer.account, 'BOND', secAmount, 'USD', cashAmount, unix(expiryMs), nonce));
    }
}

async function rejects(promise, code) {
    await assert.rejects(promise, (err) => {
        assert.equal(err.code, code, err.message);
        assert.ok(err.message.startsWith(`${code}: `), err.message);
        return true;
    });
}

async function funded() {
    const e = new Env();
    await e.tx((r, s) => r.initLedger(s, admin, issuer.account));
    await e.tx((r, s) => r.issue(s, issuer, seller.account, 'BOND', '1000'));
    await e.tx((r, s) => r.issue(s, issuer, buyer.account, 'USD', '5000'));
    return e;
}

test('amounts are canonical decimals above zero, at most 2^64-1', () => {
    for (const s of ['', '0', '00', '-1', '+1', ' 1', '1 ', '01', '1.5', '1e3', '0x10', '18446744073709551616', '99999999999999999999999']) {
        assert.throws(() => parseAmount('amount', s), /DVP_BAD_ARGUMENT/, s);
    }
    assert.equal(parseAmount('amount', '18446744073709551615'), (1n << 64n) - 1n);
});

test('InitLedger once, and only by an organisation admin', async () => {
    const e = new Env();
    await rejects(e.tx((r, s) => r.issue(s, issuer, buyer.account, 'USD', '1')), Code.NotInitialised);
    await rejects(e.tx((r, s) => r.initLedger(s, mallory, mallory.account)), Code.Unauthorized);
    await e.tx((r, s) => r.initLedger(s, admin, issuer.account));
    await rejects(e.tx((r, s) => r.initLedger(s, admin, mallory.account)), Code.AlreadyInitialised);
    assert.equal(await e.tx((r, s) => r.issuer(s)), issuer.account);
});

test('only the issuer issues', async () => {
    const e = await funded();
    await rejects(e.tx((r, s) => r.issue(s, mallory, mallory.account, 'USD', '1')), Code.Unauthorized);
    // The same CN under another MSP is another account.
    const fake = {account: issuer.account.replace('SellerBankMSP', 'BuyerBankMSP'), admin: false};
    await rejects(e.tx((r, s) => r.issue(s, fake, fake.account, 'USD', '1')), Code.Unauthorized);
    await rejects(e.tx((r, s) => r.issue(s, admin, admin.account, 'USD', '1')), Code.Unauthorized);
    await rejects(e.tx((r, s) => r.issue(s, issuer, buyer.account, 'USD', '0')), Code.BadArgument);
    await rejects(e.tx((r, s) => r.issue(s, issuer, buyer.account, 'US\u0000D', '1')), Code.BadArgument);
    await rejects(e.tx((r, s) => r.issue(s, issuer, buyer.account, 'USD', String((1n << 64n) - 4999n))), Code.BadArgument);
    assert.equal(await e.bal(buyer, 'USD'), 5000n);
    assert.equal(e.ledger.lastEvent().name, 'Issued');
});

test('transfer moves funds and refuses overdrafts, self-transfers and zero', async () => {
    const e = await funded();
    await e.tx((r, s) => r.transfer(s, seller, buyer.account, 'BOND', '10'));
    assert.equal(await e.bal(seller, 'BOND'), 990n);
    assert.equal(await e.bal(buyer, 'BOND'), 10n);
    await rejects(e.tx((r, s) => r.transfer(s, seller, buyer.account, 'BOND', '991')), Code.InsufficientFunds);
    await rejects(e.tx((r, s) => r.transfer(s, seller, seller.account, 'BOND', '1')), Code.BadArgument);
    await rejects(e.tx((r, s) => r.transfer(s, seller, buyer.account, 'BOND', '0')), Code.BadArgument);
});

test('rule 8: a timestamp more than the skew from the endorser clock is refused', async () => {
    const e = await funded();
    const exp = T0 + 3600_000;
    for (const skew of [-31_000, 31_000, 86_400_000]) {
        await rejects(e.tx((r, s) => r.lock(s, seller, buyer.account, 'BOND', '1', sha(SECRET), unix(exp), NONCE), skew), Code.ClockSkew);
        await rejects(e.tx((r, s) => r.transfer(s, seller, buyer.account, 'BOND', '1'), skew), Code.ClockSkew);
    }
    for (const skew of [-30_000, 30_000]) {
        await e.tx((r, s) => r.transfer(s, seller, buyer.account, 'BOND', '1'), skew);
    }
});

test('rule 8: a claim cannot be backdated beyond the skew', async () => {
    const e = await funded();
    const lid = await e.lock(seller, buyer, '10', sha(SECRET), T0 + 60_000);
    e.clock = T0 + 120_000; // expired by the endorser's clock
    await rejects(e.tx((r, s) => r.claim(s, lid, SECRET.toString('hex')), -90_000), Code.ClockSkew);
    await rejects(e.tx((r, s) => r.claim(s, lid, SECRET.toString('hex')), -30_000), Code.LockExpired);
});

test('lock ids cover every term and match the vectors shared with Python', () => {
    const h = crypto.createHash('sha256').update(SECRET).digest();
    const base = lockId('a', 'b', 'BOND', 10n, h, 100, Buffer.from([1]));
    const variants = [
        lockId('x', 'b', 'BOND', 10n, h, 100, Buffer.from([1])),
        lockId('a', 'x', 'BOND', 10n, h, 100, Buffer.from([1])),
        lockId('a', 'b', 'BONX', 10n, h, 100, Buffer.from([1])),
        lockId('a', 'b', 'BOND', 11n, h, 100, Buffer.from([1])),
        lockId('a', 'b', 'BOND', 10n, Buffer.alloc(32), 100, Buffer.from([1])),
        lockId('a', 'b', 'BOND', 10n, h, 101, Buffer.from([1])),
        lockId('a', 'b', 'BOND', 10n, h, 100, Buffer.from([2])),
        lockId('ab', '', 'BOND', 10n, h, 100, Buffer.from([1])), // bytes moved across a field boundary
    ];
    assert.equal(new Set([base, ...variants]).size, variants.length + 1);
    // tests/fabric/test_lockid.py pins the same two vectors for adapters/dvp_fabric/lockid.py.
    assert.equal(lockId('SellerBankMSP::CN=s', 'BuyerBankMSP::CN=b', 'BOND', 10n, h, 1_700_000_600, Buffer.from([1, 2, 3, 4])),
        '1e3b53f89f7d07af831002bac8be04f47b6676546ef4a486b2dc858c3dfe8fdb');
    assert.equal(orderId('SellerBankMSP::CN=s', 'BuyerBankMSP::CN=b', 'BOND', 10n, 'USD', 4000n, 1_700_000_600, Buffer.from([1, 2, 3, 4])),
        'c0e65a807c82b126e2840a44b60a384211122b218bd7fddc7c6ff4e111abd21f');
});

test('rule 7: bad lock terms are refused and move nothing', async () => {
    const e = await funded();
    const h = sha(SECRET);
    const later = T0 + 3600_000;
    const cases = [
        ['0', h, later, buyer, Code.BadArgument], ['-5', h, later, buyer, Code.BadArgument],
        ['1', h.slice(0, 62), later, buyer, Code.BadArgument], ['1', `${h}00`, later, buyer, Code.BadArgument],
        ['1', `0x${h.slice(2)}`, later, buyer, Code.BadArgument], ['1', `zz${h.slice(2)}`, later, buyer, Code.BadArgument],
        ['1', h, T0, buyer, Code.BadArgument], ['1', h, T0 - 1000, buyer, Code.BadArgument],
        ['1', h, later, seller, Code.BadArgument], ['1001', h, later, buyer, Code.InsufficientFunds],
    ];
    for (const [amount, hashlock, exp, to, code] of cases) {
        await rejects(e.lock(seller, to, amount, hashlock, exp), code);
    }
    for (const [exp, nonce] of [['0', NONCE], ['-1', NONCE], ['01700003600', NONCE], ['1700003600', ''], ['1700003600', '0x01'], ['1700003600', '00'.repeat(65)], ['1700003600', '0']]) {
        await rejects(e.tx((r, s) => r.lock(s, seller, buyer.account, 'BOND', '1', h, exp, nonce)), Code.BadArgument);
    }
    assert.equal(await e.bal(seller, 'BOND'), 1000n);
});

test('rule 7: a lock escrows, emits HtlcLocked and cannot be made twice', async () => {
    const e = await funded();
    const exp = T0 + 3600_000;
    const lid = await e.lock(seller, buyer, '10', sha(SECRET), exp);
    assert.equal(lid, lockId(seller.account, buyer.account, 'BOND', 10n, Buffer.from(sha(SECRET), 'hex'), Number(unix(exp)), Buffer.from(NONCE, 'hex')));
    assert.equal(await e.bal(seller, 'BOND'), 990n);
    const ev = e.ledger.lastEvent();
    assert.equal(ev.name, 'HtlcLocked');
    assert.equal(ev.payload.lock.id, lid);
    assert.equal(ev.payload.lock.status, 'LOCKED');
    assert.ok(ev.payload.txId);
    await rejects(e.lock(seller, buyer, '10', sha(SECRET), exp), Code.LockExists);
    assert.equal(await e.bal(seller, 'BOND'), 990n);
    const lock = await e.tx((r, s) => r.getLock(s, lid));
    assert.deepEqual([lock.sender, lock.recipient, lock.amount, lock.hashlock, lock.expiry, lock.nonce],
        [seller.account, buyer.account, '10', sha(SECRET), Number(unix(exp)), NONCE]);
});

test('rules 1 and 2: wrong, short, long, non-hex and hex-as-text preimages are refused', async () => {
    const e = await funded();
    const lid = await e.lock(seller, buyer, '10', sha(SECRET), T0 + 3600_000);
    const hexText = Buffer.from(SECRET.toString('hex')).toString('hex').slice(0, 64);
    for (const pre of ['00'.repeat(32), SECRET.subarray(0, 31).toString('hex'), `${SECRET.toString('hex')}00`, '', 'zz', `0x${SECRET.toString('hex')}`, hexText]) {
        await rejects(e.tx((r, s) => r.claim(s, lid, pre)), Code.InvalidPreimage);
    }
    await rejects(e.tx((r, s) => r.claim(s, 'nope', SECRET.toString('hex'))), Code.LockNotFound);
    assert.equal(await e.bal(buyer, 'BOND'), 0n);
});

test('rule 1: a 33- or 16-byte preimage is refused even when its hash is the hashlock', async () => {
    const e = await funded();
    const long = Buffer.concat([SECRET, Buffer.from([7])]);
    const l1 = await e.lock(seller, buyer, '10', sha(long), T0 + 3600_000);
    await rejects(e.tx((r, s) => r.claim(s, l1, long.toString('hex'))), Code.InvalidPreimage);
    const short = SECRET.subarray(0, 16);
    const l2 = await e.lock(seller, buyer, '10', sha(short), T0 + 7200_000);
    await rejects(e.tx((r, s) => r.claim(s, l2, short.toString('hex'))), Code.InvalidPreimage);
});

test('rule 7: a claim pays the fixed recipient whoever submits it, once', async () => {
    const e = await funded();
    const lid = await e.lock(seller, buyer, '10', sha(SECRET), T0 + 3600_000);
    // Claim takes no identity: whoever submits, the recipient is paid.  Upper-case hex is the same bytes.
    await e.tx((r, s) => r.claim(s, lid, SECRET.toString('hex').toUpperCase()));
    assert.equal(await e.bal(buyer, 'BOND'), 10n);
    assert.equal(await e.bal(mallory, 'BOND'), 0n);
    assert.equal(await e.bal(seller, 'BOND'), 990n);
    const lock = await e.tx((r, s) => r.getLock(s, lid));
    assert.equal(lock.status, 'CLAIMED');
    assert.equal(lock.preimage, SECRET.toString('hex'));
    const ev = e.ledger.lastEvent();
    assert.equal(ev.name, 'HtlcClaimed');
    assert.equal(ev.payload.lock.preimage, SECRET.toString('hex'));
    await rejects(e.tx((r, s) => r.claim(s, lid, SECRET.toString('hex'))), Code.LockNotActive);
    e.clock = T0 + 7200_000;
    await rejects(e.tx((r, s) => r.refund(s, seller, lid)), Code.LockNotActive);
    assert.equal(await e.bal(buyer, 'BOND'), 10n);
    assert.equal(await e.bal(seller, 'BOND'), 990n);
});

test('rule 7: a claim is possible only strictly before expiry', async () => {
    const e = await funded();
    const exp = T0 + 3600_000;
    const lid = await e.lock(seller, buyer, '10', sha(SECRET), exp);
    e.clock = exp;
    await rejects(e.tx((r, s) => r.claim(s, lid, SECRET.toString('hex'))), Code.LockExpired);
    e.clock = exp - 1000;
    await e.tx((r, s) => r.claim(s, lid, SECRET.toString('hex')));
});

test('rule 7: a refund only by the sender, at or after expiry, and never a claim after it', async () => {
    const e = await funded();
    const exp = T0 + 3600_000;
    const lid = await e.lock(seller, buyer, '10', sha(SECRET), exp);
    e.clock = exp - 1000;
    await rejects(e.tx((r, s) => r.refund(s, seller, lid)), Code.LockNotExpired);
    e.clock = exp;
    await rejects(e.tx((r, s) => r.refund(s, buyer, lid)), Code.Unauthorized);
    await rejects(e.tx((r, s) => r.refund(s, mallory, lid)), Code.Unauthorized);
    await e.tx((r, s) => r.refund(s, seller, lid));
    assert.equal(await e.bal(seller, 'BOND'), 1000n);
    assert.equal(e.ledger.lastEvent().name, 'HtlcRefunded');
    await rejects(e.tx((r, s) => r.refund(s, seller, lid)), Code.LockNotActive);
    e.clock = exp - 1000;
    await rejects(e.tx((r, s) => r.claim(s, lid, SECRET.toString('hex'))), Code.LockNotActive);
    assert.equal(await e.bal(buyer, 'BOND'), 0n);
});

test('DvP: the buyer accepts and one transaction moves both legs', async () => {
    const e = await funded();
    const oid = await e.propose('100', '4000', T0 + 3600_000);
    assert.equal(e.ledger.lastEvent().name, 'DvpProposed');
    await rejects(e.propose('100', '4000', T0 + 3600_000), Code.OrderExists);
    await rejects(e.tx((r, s) => r.acceptOrder(s, mallory, oid)), Code.Unauthorized);
    await rejects(e.tx((r, s) => r.acceptOrder(s, seller, oid)), Code.Unauthorized);
    await e.tx((r, s) => r.acceptOrder(s, buyer, oid));
    assert.deepEqual([await e.bal(seller, 'BOND'), await e.bal(buyer, 'BOND'), await e.bal(buyer, 'USD'), await e.bal(seller, 'USD')],
        [900n, 100n, 1000n, 4000n]);
    const ev = e.ledger.lastEvent();
    assert.equal(ev.name, 'DvpSettled');
    assert.equal(ev.payload.order.status, 'SETTLED');
    await rejects(e.tx((r, s) => r.acceptOrder(s, buyer, oid)), Code.OrderNotOpen);
    await rejects(e.tx((r, s) => r.cancelOrder(s, seller, oid)), Code.OrderNotOpen);
});

test('DvP: when one leg cannot move, nothing moves', async () => {
    const e = await funded();
    const o1 = await e.propose('100', '5001', T0 + 3600_000); // buyer has 5000 USD
    await rejects(e.tx((r, s) => r.acceptOrder(s, buyer, o1)), Code.InsufficientFunds);
    const o2 = await e.propose('1001', '1', T0 + 3600_000, 'aa'); // seller has 1000 BOND
    await rejects(e.tx((r, s) => r.acceptOrder(s, buyer, o2)), Code.InsufficientFunds);
    assert.deepEqual([await e.bal(seller, 'BOND'), await e.bal(buyer, 'BOND'), await e.bal(buyer, 'USD')], [1000n, 0n, 5000n]);
});

test('DvP: bad terms, cancel by the seller only, no acceptance at or after expiry', async () => {
    const e = await funded();
    await rejects(e.propose('0', '1', T0 + 3600_000), Code.BadArgument);
    await rejects(e.propose('1', '1', T0), Code.BadArgument);
    await rejects(e.tx((r, s) => r.proposeOrder(s, seller, seller.account, 'BOND', '1', 'USD', '1', unix(T0 + 60_000), NONCE)), Code.BadArgument);
    await rejects(e.tx((r, s) => r.proposeOrder(s, seller, buyer.account, 'BOND', '1', 'BOND', '1', unix(T0 + 60_000), NONCE)), Code.BadArgument);
    const oid = await e.propose('1', '1', T0 + 3600_000);
    await rejects(e.tx((r, s) => r.cancelOrder(s, buyer, oid)), Code.Unauthorized);
    await e.tx((r, s) => r.cancelOrder(s, seller, oid));
    assert.equal(e.ledger.lastEvent().name, 'DvpCancelled');
    await rejects(e.tx((r, s) => r.acceptOrder(s, buyer, oid)), Code.OrderNotOpen);
    const exp = T0 + 7200_000;
    const o2 = await e.propose('1', '1', exp, 'ff');
    e.clock = exp;
    await rejects(e.tx((r, s) => r.acceptOrder(s, buyer, o2)), Code.OrderExpired);
    await rejects(e.tx((r, s) => r.acceptOrder(s, buyer, 'missing')), Code.OrderNotFound);
});
