// Raw Submit throughput of the official Node Fabric Gateway client, for comparison with
// dvp's Python client (dvp_fabric.bench runs the same workload, alternating with this one):
//   node throughput.mjs '{"endpoint": ..., "tls_ca": PATH, "host_name": ..., "msp_id": ...,
//                         "cert": PATH, "key": PATH, "channel": ..., "chaincode": ...,
//                         "function": "Issue"}'
// then one round per line on stdin: {"args": [[...], ...], "in_flight": K}. Each round submits
// every argument list (endorse, submit, wait for a VALID commit), at most K at once, and prints
// {"transactions", "in_flight", "seconds", "tps"} as one JSON line. One process and one
// connection for every round, so a round after the first is timed warm (connected, JIT done),
// as the Python client is in the bench process. Ends at the end of stdin.
import {readFileSync} from 'node:fs';
import {createPrivateKey} from 'node:crypto';
import {createInterface} from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import {connect, hash, signers} from '@hyperledger/fabric-gateway';

const cfg = JSON.parse(process.argv[2]);
const options = cfg.host_name ? {'grpc.ssl_target_name_override': cfg.host_name} : {};
const client = new grpc.Client(cfg.endpoint, grpc.credentials.createSsl(readFileSync(cfg.tls_ca)), options);
const gateway = connect({
    client,
    identity: {mspId: cfg.msp_id, credentials: readFileSync(cfg.cert)},
    signer: signers.newPrivateKeySigner(createPrivateKey(readFileSync(cfg.key))),
    hash: hash.sha256,
});
try {
    const contract = gateway.getNetwork(cfg.channel).getContract(cfg.chaincode);
    for await (const line of createInterface({input: process.stdin})) {
        if (!line.trim()) continue;
        const round = JSON.parse(line);
        const queue = round.args.slice();
        const start = process.hrtime.bigint();
        const worker = async () => {
            for (let args = queue.shift(); args !== undefined; args = queue.shift()) {
                await contract.submitTransaction(cfg.function, ...args);
            }
        };
        await Promise.all(Array.from({length: round.in_flight}, worker));
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        const n = round.args.length;
        console.log(JSON.stringify({transactions: n, in_flight: round.in_flight, seconds, tps: n / seconds}));
    }
} finally {
    gateway.close();
    client.close();
}
