export interface RestartPolicy {
  initialMs: number;
  maxMs: number;
  /** Restarts allowed within `windowMs`; the next crash gives up. */
  maxRestarts: number;
  windowMs: number;
}

export type RestartDecision = { giveUp: true } | { giveUp: false; delayMs: number };

/**
 * Decides, crash by crash, whether an instance restarts and after how long: exponential
 * backoff on the number of recent restarts, with jitter so that instances crashing together
 * do not restart together.
 */
export class RestartTracker {
  readonly #policy: RestartPolicy;
  readonly #random: () => number;
  #recent: number[] = [];

  constructor(policy: RestartPolicy, random: () => number = Math.random) {
    this.#policy = policy;
    this.#random = random;
  }

  next(nowMs: number): RestartDecision {
    const { initialMs, maxMs, maxRestarts, windowMs } = this.#policy;
    this.#recent = this.#recent.filter((at) => nowMs - at < windowMs);
    if (this.#recent.length >= maxRestarts) return { giveUp: true };

    const ceiling = Math.min(maxMs, initialMs * 2 ** this.#recent.length);
    this.#recent.push(nowMs);
    // Equal jitter: at least half the backoff, so the delay still grows.
    return { giveUp: false, delayMs: Math.round(ceiling / 2 + (this.#random() * ceiling) / 2) };
  }
}
