import { describe, it } from 'node:test';
import { testBackends } from '../../test/support/database.js';
import { crashAndRecover } from './test-support/rotation-crash.js';

// Before `roll`: the new version is written, no workload touched. Before `verify`: new
// instances run the new version and the old ones are gone — the hardest moment to lose.
describe(
  'secret rotation survives a SIGKILL of its process (PostgreSQL)',
  { skip: !testBackends().includes('postgres') },
  () => {
    it('rolls back on restart after a SIGKILL before verify', () =>
      crashAndRecover('postgres', 'verify'));
    it('rolls back on restart after a SIGKILL before roll', () =>
      crashAndRecover('postgres', 'roll'));
  },
);
