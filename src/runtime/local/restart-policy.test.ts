import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { RestartTracker } from './restart-policy.js';

const policy = { initialMs: 100, maxMs: 1_000, maxRestarts: 5, windowMs: 60_000 };

describe('RestartTracker', () => {
  it('doubles the backoff per recent restart and caps it at maxMs', () => {
    const tracker = new RestartTracker(policy, () => 1);
    const delays = [0, 1, 2, 3, 4].map((second) => tracker.next(second * 1_000));
    assert.deepEqual(
      delays,
      [100, 200, 400, 800, 1_000].map((delayMs) => ({ giveUp: false, delayMs })),
    );
  });

  it('keeps jitter between half the backoff and the whole of it', () => {
    const low = new RestartTracker(policy, () => 0).next(0);
    const high = new RestartTracker(policy, () => 0.999_999).next(0);
    assert.deepEqual(low, { giveUp: false, delayMs: 50 });
    assert.deepEqual(high, { giveUp: false, delayMs: 100 });
  });

  it('gives up after maxRestarts within the window', () => {
    const tracker = new RestartTracker({ ...policy, maxRestarts: 2 }, () => 0);
    assert.equal(tracker.next(0).giveUp, false);
    assert.equal(tracker.next(1_000).giveUp, false);
    assert.equal(tracker.next(2_000).giveUp, true);
  });

  it('forgets restarts older than the window, resetting the backoff', () => {
    const tracker = new RestartTracker({ ...policy, maxRestarts: 2 }, () => 1);
    tracker.next(0);
    tracker.next(1_000);
    assert.deepEqual(tracker.next(70_000), { giveUp: false, delayMs: 100 });
  });
});
