export { createSimEngine, type SimEngine, type SimEngineOptions, type SimFault } from './sim-engine.js';
export { main, runInstance, runSessions, UsageError } from './runner.js';
