#!/usr/bin/env node
// Runs the compiled CLI. `npm run build` (or `npm start`) produces dist/.
import('../dist/cli/main.js').catch((error) => {
  if (error && error.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('switchyard: dist/ is missing; run `npm run build` first');
    process.exit(2);
  }
  throw error;
});
