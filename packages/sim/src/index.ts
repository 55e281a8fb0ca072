export {
  createSimEngine,
  type SimEngine,
  type SimEngineOptions,
  type SimFault,
  type SimLoginEvent,
  type SimLoginOptions,
  type SimSaveReason,
  type SimSessionData,
} from './sim-engine.js';
export { loginFileContent, parseLoginFile, type SimLoginHeader } from './login-file.js';
export { main, runInstance, runSessions, UsageError } from './runner.js';
export { readSimHistory, sendSimMessage, SimMessageTail, type SimMessage } from './sim-messages.js';
