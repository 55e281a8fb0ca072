'use strict';
// require('@wafleet/sim/wwebjs') from CommonJS: the ES module itself on Node >= 20.19, else a clear error (require-esm.cjs).
module.exports = require('./require-esm.cjs')('@wafleet/sim/wwebjs', () => require('./dist/wwebjs-client.js'));
