'use strict';
// require('@wafleet/protocol') from CommonJS: the ES module itself on Node >= 20.19, else a clear error (require-esm.cjs).
module.exports = require('./require-esm.cjs')('@wafleet/protocol', () => require('./dist/index.js'));
