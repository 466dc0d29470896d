export interface RouteTarget {
  host: string;
  port: number;
}

export interface RouteSnapshot {
  hostname: string;
  targets: RouteTarget[];
}

/** One hostname's targets. Never mutated: a new route replaces the whole entry. */
export interface RouteEntry {
  readonly targets: readonly RouteTarget[];
  /** Round-robin position; the only field that changes. */
  cursor: number;
}

/**
 * Hostname → targets. `set` swaps in a new entry in one step, so a request that already
 * picked its entry finishes on the old targets while new requests see the new ones.
 */
export class RouteTable {
  readonly #routes = new Map<string, RouteEntry>();

  /** Returns the targets it replaced. */
  set(hostname: string, targets: RouteTarget[]): readonly RouteTarget[] {
    const key = normalizeHostname(hostname);
    const previous = this.#routes.get(key)?.targets ?? [];
    const copies = targets.map((target) => Object.freeze({ host: target.host, port: target.port }));
    this.#routes.set(key, { targets: Object.freeze(copies), cursor: 0 });
    return previous;
  }

  /** Returns the targets it removed. */
  remove(hostname: string): readonly RouteTarget[] {
    const key = normalizeHostname(hostname);
    const previous = this.#routes.get(key)?.targets ?? [];
    this.#routes.delete(key);
    return previous;
  }

  /** `host:port` of every target some route sends traffic to. */
  routedTargets(): Set<string> {
    const keys = new Set<string>();
    for (const entry of this.#routes.values()) {
      for (const target of entry.targets) keys.add(targetKey(target));
    }
    return keys;
  }

  find(hostname: string): RouteEntry | undefined {
    return this.#routes.get(hostname);
  }

  list(): RouteSnapshot[] {
    return [...this.#routes].map(([hostname, entry]) => ({
      hostname,
      targets: entry.targets.map((target) => ({ ...target })),
    }));
  }
}

/**
 * The next target in turn; with `avoid`, the next one that is not it (a retry after a
 * failed connection), when the entry has another. Undefined for an empty entry.
 */
export function pickTarget(entry: RouteEntry, avoid?: RouteTarget): RouteTarget | undefined {
  const { targets } = entry;
  for (let tried = 0; tried < targets.length; tried++) {
    const target = targets[entry.cursor % targets.length];
    entry.cursor = (entry.cursor + 1) % targets.length;
    if (target && !(avoid && isSameTarget(target, avoid) && targets.length > 1)) return target;
  }
  return undefined;
}

export function targetKey(target: RouteTarget): string {
  return `${target.host}:${target.port}`;
}

function isSameTarget(a: RouteTarget, b: RouteTarget): boolean {
  return a.host === b.host && a.port === b.port;
}

/** The hostname a Host header names: lowercased, without port or trailing dot. */
export function hostnameOf(hostHeader: string | undefined): string | undefined {
  if (!hostHeader) return undefined;
  const host = hostHeader.trim();
  const withoutPort = host.startsWith('[')
    ? host.slice(0, host.indexOf(']') + 1)
    : host.replace(/:\d*$/, '');
  return withoutPort === '' ? undefined : normalizeHostname(withoutPort);
}

function normalizeHostname(hostname: string): string {
  return hostname.toLowerCase().replace(/\.$/, '');
}
