import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RouteTable, hostnameOf, pickTarget } from './route-table.js';

const a = { host: '127.0.0.1', port: 4001 };
const b = { host: '127.0.0.1', port: 4002 };

describe('hostnameOf', () => {
  it('lowercases and strips the port and a trailing dot', () => {
    assert.equal(hostnameOf('Web.Staging.Shop.LOCALHOST:8000'), 'web.staging.shop.localhost');
    assert.equal(hostnameOf('web.localhost.'), 'web.localhost');
    assert.equal(hostnameOf('[::1]:8000'), '[::1]');
    assert.equal(hostnameOf(undefined), undefined);
    assert.equal(hostnameOf(':8000'), undefined);
  });
});

describe('RouteTable', () => {
  it('keeps the entry a request picked when the route is swapped', () => {
    const table = new RouteTable();
    table.set('Web.localhost', [a]);
    const inFlight = table.find('web.localhost');

    const previous = table.set('web.localhost', [b]);

    assert.deepEqual(previous, [a]);
    assert.deepEqual(inFlight?.targets, [a]);
    assert.deepEqual(table.find('web.localhost')?.targets, [b]);
    assert.deepEqual([...table.routedTargets()], ['127.0.0.1:4002']);
  });

  it('takes targets in turn and skips the one that just failed', () => {
    const table = new RouteTable();
    table.set('web.localhost', [a, b]);
    const entry = table.find('web.localhost');
    assert.ok(entry);

    assert.deepEqual([pickTarget(entry), pickTarget(entry), pickTarget(entry)], [a, b, a]);
    assert.deepEqual(pickTarget(entry, b), a, 'b is next in turn but just failed');
    table.set('solo.localhost', [a]);
    const solo = table.find('solo.localhost');
    assert.ok(solo);
    assert.deepEqual(pickTarget(solo, a), a, 'a lone target is retried on a fresh connection');
  });
});
