#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

// Exit as soon as the command is done: idle keep-alive sockets must not hold the process.
main(process.argv).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
