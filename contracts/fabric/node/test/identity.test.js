'use strict';
// The account format: "<MSP>::<subject, RFC 4514 order>", admin from the OU NodeOUs set.

const test = require('node:test');
const assert = require('node:assert/strict');
const {execFileSync} = require('node:child_process');
const {callerFromCert} = require('../lib/identity');

function selfSigned(subject) {
    // openssl makes a throwaway P-256 certificate; the key never leaves the pipe.
    return execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', '/dev/null', '-days', '1', '-subj', subject], {stdio: ['ignore', 'pipe', 'ignore']}).toString();
}

let haveOpenssl = true;
try {
    execFileSync('openssl', ['version'], {stdio: 'ignore'});
} catch {
    haveOpenssl = false;
}

test('account is the MSP id and the subject, last RDN first', {skip: !haveOpenssl && 'openssl not on PATH'}, () => {
    const pem = selfSigned('/C=US/ST=California/L=San Francisco/OU=client/CN=User1@buyerbank.dvp.test');
    assert.deepEqual(callerFromCert('BuyerBankMSP', pem), {
        account: 'BuyerBankMSP::CN=User1@buyerbank.dvp.test,OU=client,L=San Francisco,ST=California,C=US',
        admin: false,
    });
    const admin = selfSigned('/C=US/OU=admin/CN=Admin@sellerbank.dvp.test');
    assert.equal(callerFromCert('SellerBankMSP', admin).admin, true);
    assert.equal(callerFromCert('SellerBankMSP', admin).account, 'SellerBankMSP::CN=Admin@sellerbank.dvp.test,OU=admin,C=US');
});

test('no MSP id or no certificate is unauthorized', () => {
    assert.throws(() => callerFromCert('', 'x'), /DVP_UNAUTHORIZED/);
    assert.throws(() => callerFromCert('SellerBankMSP', 'not a certificate'), /DVP_UNAUTHORIZED/);
});
