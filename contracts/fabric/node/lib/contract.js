'use strict';
/*
 * The dvp contract: rules.js behind fabric-contract-api.  Every argument and
 * result is a string (GetLock and GetOrder return JSON text), so the contract
 * API never reinterprets an amount.  Functions and arguments are listed in
 * docs/fabric-chaincode.md.
 */

const {Contract} = require('fabric-contract-api');
const {Rules, DvpError, Code} = require('./rules');
const {callerOf} = require('./identity');

function maxSkewFromEnv() {
    const s = process.env.DVP_MAX_SKEW_SECONDS;
    if (s === undefined || s === '') {
        return undefined;
    }
    if (!/^[1-9][0-9]*$/.test(s)) {
        throw new Error(`DVP_MAX_SKEW_SECONDS=${JSON.stringify(s)} is not a positive integer`);
    }
    return Number(s);
}

// Pure JavaScript contracts get every argument as passed: check the count here,
// as the Go contract API did.
function arity(name, args, n) {
    if (args.length !== n) {
        throw new DvpError(Code.BadArgument, `${name} takes ${n} argument(s), got ${args.length}`);
    }
    return args;
}

class DvpContract extends Contract {
    constructor() {
        super('dvp');
        this.rules = new Rules({maxSkewSeconds: maxSkewFromEnv()});
    }

    async InitLedger(ctx, ...a) {
        await this.rules.initLedger(ctx.stub, callerOf(ctx), ...arity('InitLedger', a, 1));
    }

    async Issuer(ctx, ...a) {
        arity('Issuer', a, 0);
        return this.rules.issuer(ctx.stub);
    }

    async WhoAmI(ctx, ...a) {
        arity('WhoAmI', a, 0);
        return callerOf(ctx).account;
    }

    async Issue(ctx, ...a) {
        await this.rules.issue(ctx.stub, callerOf(ctx), ...arity('Issue', a, 3));
    }

    async Transfer(ctx, ...a) {
        await this.rules.transfer(ctx.stub, callerOf(ctx), ...arity('Transfer', a, 3));
    }

    async BalanceOf(ctx, ...a) {
        return this.rules.balanceOf(ctx.stub, ...arity('BalanceOf', a, 2));
    }

    async Lock(ctx, ...a) {
        return this.rules.lock(ctx.stub, callerOf(ctx), ...arity('Lock', a, 6));
    }

    async Claim(ctx, ...a) {
        await this.rules.claim(ctx.stub, ...arity('Claim', a, 2));
    }

    async Refund(ctx, ...a) {
        await this.rules.refund(ctx.stub, callerOf(ctx), ...arity('Refund', a, 1));
    }

    async GetLock(ctx, ...a) {
        return JSON.stringify(await this.rules.getLock(ctx.stub, ...arity('GetLock', a, 1)));
    }

    async ProposeOrder(ctx, ...a) {
        return this.rules.proposeOrder(ctx.stub, callerOf(ctx), ...arity('ProposeOrder', a, 7));
    }

    async AcceptOrder(ctx, ...a) {
        await this.rules.acceptOrder(ctx.stub, callerOf(ctx), ...arity('AcceptOrder', a, 1));
    }

    async CancelOrder(ctx, ...a) {
        await this.rules.cancelOrder(ctx.stub, callerOf(ctx), ...arity('CancelOrder', a, 1));
    }

    async GetOrder(ctx, ...a) {
        return JSON.stringify(await this.rules.getOrder(ctx.stub, ...arity('GetOrder', a, 1)));
    }
}

module.exports = {DvpContract};
