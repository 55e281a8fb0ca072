'use strict';
// require('@wafleet/client') from CommonJS: the ES module itself on Node >= 20.19, else a clear error (require-esm.cjs).
module.exports = require('./require-esm.cjs')('@wafleet/client', () => require('./dist/index.js'));
