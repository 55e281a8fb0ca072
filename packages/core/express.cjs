'use strict';
// require('@wafleet/core/express') from CommonJS: the ES module itself on Node >= 20.19, else a clear error (require-esm.cjs).
module.exports = require('./require-esm.cjs')('@wafleet/core/express', () => require('./dist/http/index.js'));
