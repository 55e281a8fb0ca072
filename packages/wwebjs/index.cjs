'use strict';
// require('@wafleet/wwebjs') from CommonJS: the ES module itself on Node >= 20.19, else a clear error (@wafleet/protocol/require-esm).
module.exports = require('@wafleet/protocol/require-esm')('@wafleet/wwebjs', () => require('./dist/index.js'));
