import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createTestApp, signUp, type TestApp } from '../support/app.js';
import { testBackends } from '../support/database.js';

for (const backend of testBackends()) {
  describe(`JSON bodies keep their types on ${backend}`, () => {
    let t: TestApp;
    let headers: Record<string, string>;
    before(async () => {
      t = await createTestApp(backend);
      headers = (await signUp(t.app)).headers;
    });
    after(async () => t.close());

    for (const [label, name] of [
      ['a number', 123],
      ['an array', ['web']],
      ['null', null],
      ['a boolean', true],
    ] as const) {
      it(`refuses ${label} where a string belongs with 400 VALIDATION_FAILED naming the field`, async () => {
        const response = await t.app.inject({
          method: 'POST',
          url: '/v1/projects',
          headers,
          payload: { name },
        });
        assert.equal(response.statusCode, 400, response.body);
        assert.equal(response.json().error.code, 'VALIDATION_FAILED');
        assert.match(JSON.stringify(response.json().error.details), /name/);
      });
    }

    it('still reads numbers from the query string', async () => {
      const response = await t.app.inject({ url: '/v1/projects?limit=5', headers });
      assert.equal(response.statusCode, 200, response.body);
    });
  });
}
