import { describe, it } from 'node:test';
import { testBackends } from '../../test/support/database.js';
import { takeOverFromKilledRunner } from './test-support/rotation-takeover.js';

// Two live processes on one PostgreSQL database, as on two machines: no restart settles the
// rotation, the survivor does, once the dead runner's heartbeat has expired.
describe(
  'a rotation whose process is SIGKILLed is rolled back by another live process',
  { skip: !testBackends().includes('postgres') },
  () => {
    it('before roll: the previous deployment stays live, the new version is rolled back', () =>
      takeOverFromKilledRunner('roll'));
    it('before verify: the switched workloads are restored to the previous version', () =>
      takeOverFromKilledRunner('verify'));
  },
);
