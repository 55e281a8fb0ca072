'use strict';
// require('@wafleet/sim') from CommonJS: the ES module itself on Node >= 20.19, else a clear error (require-esm.cjs).
module.exports = require('./require-esm.cjs')('@wafleet/sim', () => require('./dist/index.js'));
