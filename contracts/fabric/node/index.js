'use strict';
// The chaincode's entry point for fabric-chaincode-node (package.json "main").
const {DvpContract} = require('./lib/contract');

module.exports.DvpContract = DvpContract;
module.exports.contracts = [DvpContract];
