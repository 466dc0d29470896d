import { describe, it } from 'node:test';
import { testBackends } from '../../test/support/database.js';
import { crashAndRecover } from './test-support/rotation-crash.js';

// Embedded PGlite in the data folder: the killed process's database is reopened as it was.
describe(
  'secret rotation survives a SIGKILL of its process (embedded PGlite)',
  { skip: !testBackends().includes('pglite') },
  () => {
    it('rolls back on restart after a SIGKILL before verify', () =>
      crashAndRecover('pglite', 'verify'));
  },
);
