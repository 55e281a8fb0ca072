#!/usr/bin/env node
import { main } from '../dist/runner.js';

await main(process.argv.slice(2));
