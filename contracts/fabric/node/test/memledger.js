'use strict';
// An in-memory ledger for the rule tests: each transaction's writes and event are
// applied only when it succeeds, and, as on Fabric, a transaction does not read
// its own writes through the stub.

class MemStub {
    constructor(ledger, txId, tsMs) {
        this.ledger = ledger;
        this.txId = txId;
        this.tsMs = tsMs;
        this.writes = new Map();
        this.event = null;
    }

    createCompositeKey(type, parts) {
        return `\u0000${type}\u0000${parts.map((p) => `${p}\u0000`).join('')}`;
    }

    async getState(k) {
        return this.ledger.state.get(k) || Buffer.alloc(0);
    }

    async putState(k, v) {
        this.writes.set(k, Buffer.from(v));
    }

    getTxID() {
        return this.txId;
    }

    getTxTimestamp() {
        const seconds = Math.floor(this.tsMs / 1000);
        return {seconds: {toString: () => String(seconds)}, nanos: (this.tsMs - seconds * 1000) * 1e6};
    }

    setEvent(name, payload) {
        this.event = {name, payload: JSON.parse(payload.toString())};
    }
}

class MemLedger {
    constructor() {
        this.state = new Map();
        this.events = [];
        this.seq = 0;
    }

    /** Runs fn(stub) as one transaction stamped tsMs; commits only on success. */
    async tx(tsMs, fn) {
        this.seq += 1;
        const stub = new MemStub(this, `tx${this.seq}`, tsMs);
        const out = await fn(stub);
        for (const [k, v] of stub.writes) {
            this.state.set(k, v);
        }
        if (stub.event) {
            this.events.push(stub.event);
        }
        return out;
    }

    lastEvent() {
        return this.events[this.events.length - 1];
    }
}

module.exports = {MemLedger};
