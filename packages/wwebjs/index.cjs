'use strict';
// require('@wafleet/wwebjs') from CommonJS: the ES module itself on Node >= 20.19, else a clear error (require-esm.cjs).
module.exports = require('./require-esm.cjs')('@wafleet/wwebjs', () => require('./dist/index.js'));
