'use strict';
// require('@wafleet/sim/wwebjs') from CommonJS: the ES module itself on Node >= 20.19, else a clear error (@wafleet/protocol/require-esm).
module.exports = require('@wafleet/protocol/require-esm')('@wafleet/sim/wwebjs', () => require('./dist/wwebjs-client.js'));
