'use strict';
// The package is an ES module. Node >= 20.19 (22.12 on the 22 line) can require() it; older Node throws a bare
// ERR_REQUIRE_ESM that names no fix, so this says which Node version is needed and that import() works.

/** `load()`, or an error with code WAFLEET_NODE_VERSION when this Node cannot require() an ES module. */
module.exports = function requireEsm(name, load) {
  if (process.features.require_module !== true) {
    const error = new Error(
      `${name} is an ES module and Node ${process.versions.node} cannot require() it: that needs Node >= 20.19 ` +
        '(>= 22.12 on Node 22, and no --no-experimental-require-module). ' +
        `Upgrade Node, or load it with \`await import('${name}')\`, which works from CommonJS too.`,
    );
    error.code = 'WAFLEET_NODE_VERSION';
    throw error;
  }
  return load();
};
