'use strict';
/*
 * The account of a client identity: "<MSP id>::<certificate subject>", the
 * subject in RFC 4514 order (last RDN first, as Go's pkix.Name.String() and
 * Python's cryptography Name.rfc4514_string() print it), e.g.
 * "BuyerBankMSP::CN=User1@buyerbank.dvp.test,OU=client,L=San Francisco,ST=California,C=US".
 * The same CN under another MSP is another account.
 */

const {X509Certificate} = require('node:crypto');

/** The subject's attributes in certificate order, as [name, value] pairs. */
function subjectAttributes(cert) {
    // Node prints one attribute per line, already escaped as RFC 2253 wants.
    return cert.subject.split('\n').filter(Boolean).map((line) => {
        const eq = line.indexOf('=');
        return [line.slice(0, eq), line.slice(eq + 1)];
    });
}

/** {account, admin} of the identity whose PEM certificate is pem, under mspId. */
function callerFromCert(mspId, pem) {
    if (!mspId) {
        throw new Error('DVP_UNAUTHORIZED: no MSP id for the caller');
    }
    let cert;
    try {
        cert = new X509Certificate(pem);
    } catch (err) {
        throw new Error(`DVP_UNAUTHORIZED: the caller has no X.509 certificate (${err.message})`);
    }
    const attrs = subjectAttributes(cert);
    const subject = attrs.map(([k, v]) => `${k}=${v}`).reverse().join(',');
    return {
        account: `${mspId}::${subject}`,
        // NodeOUs give an admin certificate the OU "admin".
        admin: attrs.some(([k, v]) => k === 'OU' && v === 'admin'),
    };
}

/** The caller of a transaction context. */
function callerOf(ctx) {
    const ci = ctx.clientIdentity;
    // idBytes is a Uint8Array holding the PEM certificate.
    return callerFromCert(ci.getMSPID(), Buffer.from(ci.getIDBytes()).toString('utf8'));
}

module.exports = {callerFromCert, callerOf};
