export { EXIT, main, type CliIo } from './cli.js';
