export { createSimEngine, type SimEngine, type SimEngineOptions, type SimFault } from './sim-engine.js';
