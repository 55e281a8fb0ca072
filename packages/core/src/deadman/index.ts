export {
  startDeadmanSwitch,
  type DeadmanSwitch,
  type DeadmanSwitchEvents,
  type DeadmanSwitchOptions,
  type DeadmanFiredEvent,
  type DeadmanFireReason,
} from './deadman-switch.js';
