/**
 * The one gate every outbound URL passes through: git remotes today, webhook sinks and
 * compliance exporters later. It refuses URLs that could reach the platform's own network
 * (SSRF), smuggle options into `git`, or carry credentials that would then be stored.
 *
 * Callers must use the URL this module returns, never the raw input: hosts are normalised
 * here (`0x7f.1` becomes `127.0.0.1`) so the address that was checked is the one git dials.
 *
 * TODO: pin the connection to the checked addresses — a DNS answer can change between this
 * check and git's own lookup (rebinding); that needs a git proxy or a guarded agent.
 */
import { BlockList, isIP } from 'node:net';
import { promises as dns } from 'node:dns';
import { realpath } from 'node:fs/promises';
import {
  basename,
  dirname,
  isAbsolute,
  join,
  relative,
  resolve as resolvePath,
  sep,
} from 'node:path';
import { AppError } from './errors.js';

export interface UrlPolicy {
  /** Exact lowercase hostnames; `*.example.com` matches any subdomain, not the apex. */
  allowedGitHosts: readonly string[];
  /** Absolute local paths and file:// URLs (relative paths are always refused). */
  allowLocalGit: boolean;
  /** Operator opt-in to loopback, private and other non-public targets. */
  allowPrivateNetworks: boolean;
  /** Folders under which anyone may name a local repository; instance admins may name any. */
  localGitRoots?: readonly string[];
  /** Switchyard's data folder: no local repository may lie inside it, whoever names it. */
  dataDir?: string;
}

/** Who names a git URL: local repositories outside the allowed roots are for admins only. */
export interface GitUrlCaller {
  isInstanceAdmin: boolean;
}

/** Resolves a hostname to IP addresses. Tests inject a fake; production uses DNS. */
export type Resolver = (hostname: string) => Promise<string[]>;

export interface CheckedGitUrl {
  /** The normalised URL to hand to git. */
  url: string;
  kind: 'https' | 'ssh' | 'local';
  /** Lowercase hostname without IPv6 brackets; absent for local repositories. */
  host?: string;
}

export interface OutboundPolicy {
  allowPrivateNetworks: boolean;
  allowHttp?: boolean;
}

type Reject = (reason: string, message: string, cause?: unknown) => AppError;

const MAX_URL_LENGTH = 2048;
const DNS_TIMEOUT_MS = 5000;
const REDACTED = '***';

// Control characters, any Unicode whitespace and bidi overrides: none belong in a URL.
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\s\u200b-\u200f\u202a-\u202e\u2066-\u2069]/u;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const REMOTE_HELPER = /^[A-Za-z][A-Za-z0-9+.-]*::/;
const SSH_URL = /^ssh:\/\/(?:([^@/?#]*)@)?(\[[^\]/]*\]|[^:/?#[\]@]*)(?::([^/?#]*))?(\/[^?#]*)?$/i;
const SCP_URL = /^(?:([^@/:[\]]+)@)?(\[[^\]/]*\]|[^:/[\]@]+):(.*)$/;
const SSH_USER = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*$/;
const REMOTE_PATH = /^[A-Za-z0-9._~/+-]+$/;
const HOST_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

// Not globally routable IPv4: RFC 6890 special-purpose blocks that could reach us or our
// neighbours, plus documentation ranges (never a real git host).
const BLOCKED_V4: ReadonlyArray<readonly [string, number]> = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // CGNAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];

// IPv6 outside global unicast (2000::/3) is refused outright; inside it these are not public:
// Teredo and other IETF assignments, documentation.
const BLOCKED_V6: ReadonlyArray<readonly [string, number]> = [
  ['2001::', 23],
  ['2001:db8::', 32],
  ['3fff::', 20],
];

const BLOCKED = new BlockList();
for (const [network, prefix] of BLOCKED_V4) BLOCKED.addSubnet(network, prefix, 'ipv4');
for (const [network, prefix] of BLOCKED_V6) BLOCKED.addSubnet(network, prefix, 'ipv6');

const GLOBAL_UNICAST_V6 = new BlockList();
GLOBAL_UNICAST_V6.addSubnet('2000::', 3, 'ipv6');

const rejectGit: Reject = (reason, message, cause) =>
  new AppError('GIT_URL_REJECTED', message, { details: { reason }, cause });

const rejectOutbound: Reject = (reason, message, cause) =>
  new AppError('OUTBOUND_URL_REJECTED', message, { details: { reason }, cause });

export const systemResolver: Resolver = async (hostname) => {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('DNS lookup timed out')), DNS_TIMEOUT_MS);
  });
  try {
    const lookup = dns.lookup(hostname, { all: true, verbatim: true });
    const records = await Promise.race([lookup, timeout]);
    return records.map((record) => record.address);
  } finally {
    clearTimeout(timer);
  }
};

/**
 * True when an address must not be dialled without the operator's opt-in: anything not
 * globally routable, including IPv4 hidden inside IPv6 (mapped, NAT64, 6to4). Input that is
 * not an IP address counts as blocked.
 */
export function isBlockedAddress(ip: string): boolean {
  const address = ip.replace(/%.*$/s, ''); // an IPv6 zone id does not change the range
  const family = isIP(address);
  if (family === 4) return BLOCKED.check(address, 'ipv4');
  if (family !== 6) return true;

  const words = ipv6Words(address);
  if (words === undefined) return true;
  const embedded = embeddedIPv4(words);
  if (embedded !== undefined) return isBlockedAddress(embedded);
  return !GLOBAL_UNICAST_V6.check(address, 'ipv6') || BLOCKED.check(address, 'ipv6');
}

/** Validates syntax and policy without touching DNS. */
export function parseGitUrl(raw: string, policy: UrlPolicy): CheckedGitUrl {
  checkRawText(raw, rejectGit);
  if (REMOTE_HELPER.test(raw)) {
    throw rejectGit('remote_helper', 'git remote helpers such as ext:: are not allowed');
  }

  const scheme = SCHEME.exec(raw)?.[1]?.toLowerCase();
  if (scheme !== undefined) return parseSchemeUrl(raw, scheme, policy);
  if (raw.startsWith('/')) return parseLocalPath(raw, raw, policy);

  const scp = SCP_URL.exec(raw);
  if (scp !== null) return parseScpUrl(scp, policy);
  throw rejectGit(
    'relative_path',
    'relative paths are not allowed; give an https:// or ssh git URL',
  );
}

/**
 * Validates like `parseGitUrl`, then refuses hosts that resolve to a blocked address, and
 * local repositories the caller may not name (see `checkLocalGitPath`).
 */
export async function checkGitUrl(
  raw: string,
  policy: UrlPolicy,
  resolve: Resolver = systemResolver,
  caller: GitUrlCaller = { isInstanceAdmin: false },
): Promise<CheckedGitUrl> {
  const checked = parseGitUrl(raw, policy);
  if (checked.kind === 'local') await checkLocalGitPath(checked.url, policy, caller);
  if (checked.host === undefined || policy.allowPrivateNetworks) return checked;
  if (isIP(checked.host) !== 0) return checked; // literals were judged without DNS
  await assertPublicHost(checked.host, resolve, rejectGit);
  return checked;
}

/** Checks a URL the platform will call (webhook sink, exporter): https, public address. */
export async function checkOutboundUrl(
  raw: string,
  policy: OutboundPolicy,
  resolve: Resolver = systemResolver,
): Promise<URL> {
  checkRawText(raw, rejectOutbound);
  const url = parseWebUrl(raw, rejectOutbound);
  const allowed = policy.allowHttp === true ? ['https:', 'http:'] : ['https:'];
  if (!allowed.includes(url.protocol)) {
    const reason = url.protocol === 'http:' ? 'insecure_scheme' : 'unsupported_scheme';
    throw rejectOutbound(reason, `outbound URLs must use ${allowed.join(' or ')}`);
  }

  const host = checkWebAuthority(raw, url, rejectOutbound);
  if (policy.allowPrivateNetworks) return url;
  if (isIP(host) === 0) await assertPublicHost(host, resolve, rejectOutbound);
  else if (isBlockedAddress(host)) throw blockedAddress(rejectOutbound);
  return url;
}

/** A form of the URL safe for logs: credentials, query values and fragments are masked. */
export function redactUrl(raw: string): string {
  const text = raw.replace(new RegExp(UNSAFE_CHARS.source, 'gu'), '').slice(0, MAX_URL_LENGTH);
  // `user:pw@host:path` parses as a URL with scheme `user`; only `scheme://` forms are URLs.
  const url = SCHEME.test(text) && URL.canParse(text) ? new URL(text) : undefined;
  if (url === undefined) {
    // scp-style, a path, or garbage: mask whatever could be a secret.
    return text
      .replace(/^[^/@]*:[^/@]*@/, `${REDACTED}@`)
      .replace(/\/\/[^/@]*@/, `//${REDACTED}@`)
      .replace(/[?#].*$/s, `?${REDACTED}`);
  }

  if (url.username !== '' || url.password !== '') {
    url.username = REDACTED;
    url.password = '';
  }
  for (const key of new Set(url.searchParams.keys())) url.searchParams.set(key, REDACTED);
  if (url.hash !== '') url.hash = REDACTED;
  return url.href;
}

function checkRawText(raw: string, reject: Reject): void {
  if (raw.trim() === '') throw reject('empty', 'the URL is empty');
  if (raw.length > MAX_URL_LENGTH) {
    throw reject('too_long', `the URL is longer than ${MAX_URL_LENGTH} characters`);
  }
  if (UNSAFE_CHARS.test(raw)) {
    throw reject('control_characters', 'the URL contains whitespace or control characters');
  }
  if (raw.startsWith('-')) throw reject('option_injection', 'the URL must not start with "-"');
  if (raw.includes('\\')) throw reject('invalid_character', 'the URL must not contain "\\"');
}

function parseSchemeUrl(raw: string, scheme: string, policy: UrlPolicy): CheckedGitUrl {
  switch (scheme) {
    case 'https':
      return parseHttpsUrl(raw, policy);
    case 'ssh':
      return parseSshUrl(raw, policy);
    case 'file':
      return parseLocalPath(raw, raw.slice('file://'.length), policy);
    case 'http':
    case 'git':
      throw rejectGit('insecure_scheme', `${scheme}:// is unencrypted; use https:// or ssh`);
    default:
      throw rejectGit('unsupported_scheme', 'git URLs must use https:// or ssh');
  }
}

function parseHttpsUrl(raw: string, policy: UrlPolicy): CheckedGitUrl {
  refuseQuery(raw);
  const url = parseWebUrl(raw, rejectGit);
  const host = checkWebAuthority(raw, url, rejectGit);
  if (url.pathname === '/' || url.pathname === '') {
    throw rejectGit('missing_path', 'the git URL names no repository path');
  }
  if (UNSAFE_CHARS.test(safeDecode(url.pathname))) {
    throw rejectGit('control_characters', 'the URL path encodes control characters');
  }
  checkGitHost(host, policy);
  return { url: url.href, kind: 'https', host };
}

function parseSshUrl(raw: string, policy: UrlPolicy): CheckedGitUrl {
  refuseQuery(raw);
  const match = SSH_URL.exec(raw);
  if (match === null) throw rejectGit('invalid_url', 'the ssh URL is malformed');
  const [, user, rawHost = '', port, path] = match;

  checkSshUser(user);
  const host = normaliseHost(rawHost, rejectGit);
  if (port !== undefined) checkPort(port);
  if (path === undefined || path === '/') {
    throw rejectGit('missing_path', 'the git URL names no repository path');
  }
  checkRemotePath(path.slice(1));
  checkGitHost(host, policy);

  const authority = `${user === undefined ? '' : `${user}@`}${bracket(host)}`;
  return {
    url: `ssh://${authority}${port === undefined ? '' : `:${port}`}${path}`,
    kind: 'ssh',
    host,
  };
}

// scp-style `[user@]host:path`: git never reads a port here, so `host:1234/repo` is a path.
function parseScpUrl(match: RegExpExecArray, policy: UrlPolicy): CheckedGitUrl {
  const [, user, rawHost = '', path = ''] = match;
  if (/^[^/]*@/.test(path)) {
    throw rejectGit('credentials_in_url', 'git URLs must not contain credentials');
  }
  checkSshUser(user);
  const host = normaliseHost(rawHost, rejectGit);
  if (path === '' || path === '/') {
    throw rejectGit('missing_path', 'the git URL names no repository path');
  }
  checkRemotePath(path);
  checkGitHost(host, policy);
  return {
    url: `${user === undefined ? '' : `${user}@`}${bracket(host)}:${path}`,
    kind: 'ssh',
    host,
  };
}

function refuseQuery(raw: string): void {
  if (/[?#]/.test(raw)) {
    throw rejectGit('query_not_allowed', 'git URLs must not have a query or fragment');
  }
}

function parseLocalPath(raw: string, path: string, policy: UrlPolicy): CheckedGitUrl {
  if (!policy.allowLocalGit) {
    throw rejectGit('local_not_allowed', 'local git repositories are not allowed');
  }
  if (!path.startsWith('/')) {
    throw rejectGit('relative_path', 'local git repositories need an absolute path');
  }
  if (raw.startsWith('file://') && raw.includes('%')) {
    // Git decodes file:// URLs; a path is checked only in the one form git reads.
    throw rejectGit('encoded_path', 'file:// git URLs must not be percent-encoded');
  }
  return { url: raw, kind: 'local' };
}

/** The filesystem path of a local git URL (`/path` or `file:///path`); undefined otherwise. */
export function localGitPath(url: string): string | undefined {
  const path = url.startsWith('file://') ? url.slice('file://'.length) : url;
  return path.startsWith('/') ? path : undefined;
}

const rejectLocal = (reason: string, message: string) =>
  new AppError('GIT_LOCAL_PATH_REJECTED', message, { details: { reason } });

/**
 * A local repository is refused inside Switchyard's data folder, for everyone; elsewhere
 * it is for instance admins, or anyone when it lies under one of `policy.localGitRoots`.
 * Paths are compared after resolving `..` and links, so neither leads out of a root.
 */
export async function checkLocalGitPath(
  url: string,
  policy: UrlPolicy,
  caller: GitUrlCaller,
): Promise<void> {
  const path = localGitPath(url);
  if (path === undefined)
    throw rejectGit('relative_path', 'local git repositories need an absolute path');
  const real = await resolveExisting(path);

  if (policy.dataDir !== undefined && isWithin(real, await resolveExisting(policy.dataDir))) {
    throw rejectLocal(
      'inside_data_folder',
      "local repositories inside Switchyard's data folder are refused",
    );
  }
  if (caller.isInstanceAdmin) return;
  for (const root of policy.localGitRoots ?? []) {
    if (isWithin(real, await resolveExisting(root))) return;
  }
  throw rejectLocal(
    'outside_local_roots',
    'only instance admins may use a local repository outside the allowed local roots (SWITCHYARD_GIT_LOCAL_ROOTS)',
  );
}

/**
 * The real path of `path`: links and `..` resolved in the part that exists, the rest (which
 * cannot hold a link yet) appended as written, normalised.
 */
async function resolveExisting(path: string): Promise<string> {
  // The kernel resolves a link before the `..` after it, so the text is not normalised first.
  const real = await realpath(path).catch(() => undefined);
  if (real !== undefined) return real;
  const parent = dirname(path);
  if (parent === path) return resolvePath(path);
  return join(await resolveExisting(parent), basename(path));
}

function isWithin(path: string, folder: string): boolean {
  const inside = relative(folder, path);
  return (
    inside === '' || (inside !== '..' && !inside.startsWith(`..${sep}`) && !isAbsolute(inside))
  );
}

function parseWebUrl(raw: string, reject: Reject): URL {
  try {
    return new URL(raw);
  } catch (error) {
    throw reject('invalid_url', 'the URL is malformed', error);
  }
}

/** Returns the URL's bare hostname after refusing userinfo, empty hosts and bad ports. */
function checkWebAuthority(raw: string, url: URL, reject: Reject): string {
  // The WHATWG parser forgives `https:///host`; git and curl would not, so read the raw text.
  const authority = SCHEME.test(raw) ? (/^[^:]+:\/\/([^/?#]*)/.exec(raw)?.[1] ?? '') : '';
  if (authority.includes('@') || url.username !== '' || url.password !== '') {
    throw reject(
      'credentials_in_url',
      'URLs must not contain credentials; they are supplied separately',
    );
  }
  if (authority === '' || url.hostname === '') throw reject('missing_host', 'the URL has no host');
  if (url.port === '0') throw reject('invalid_port', 'the URL port must be 1-65535');
  return normaliseHost(url.hostname, reject);
}

/** Lowercases and canonicalises a host (IPv4 shorthands included); strips IPv6 brackets. */
function normaliseHost(rawHost: string, reject: Reject): string {
  if (rawHost === '') throw reject('missing_host', 'the URL has no host');
  if (rawHost.startsWith('-')) throw reject('option_injection', 'the host must not start with "-"');
  if (rawHost.startsWith('[')) {
    const inner = rawHost.slice(1, -1);
    if (!rawHost.endsWith(']') || isIP(inner) !== 6 || inner.includes('%')) {
      throw reject('invalid_host', 'the bracketed host is not an IPv6 address');
    }
    return canonicalIPv6(inner);
  }

  let host: string;
  try {
    host = new URL(`https://${rawHost}/`).hostname;
  } catch (error) {
    throw reject('invalid_host', 'the host name is not valid', error);
  }
  if (host.startsWith('[')) return host.slice(1, -1);
  const labels = host.split('.');
  if (host.length > 253 || !labels.every((label) => HOST_LABEL.test(label))) {
    throw reject('invalid_host', 'the host name is not valid');
  }
  return host;
}

function checkGitHost(host: string, policy: UrlPolicy): void {
  if (isIP(host) !== 0 && isBlockedAddress(host) && !policy.allowPrivateNetworks) {
    throw blockedAddress(rejectGit);
  }
  if (!isAllowedHost(host, policy.allowedGitHosts)) {
    throw rejectGit('host_not_allowed', `git host "${host}" is not on the allowed host list`);
  }
}

function isAllowedHost(host: string, allowed: readonly string[]): boolean {
  return allowed.some((entry) => {
    const pattern = entry.toLowerCase().replace(/^\[(.*)\]$/, '$1');
    if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1));
    return host === pattern;
  });
}

function checkSshUser(user: string | undefined): void {
  if (user === undefined) return;
  if (user.includes(':')) {
    throw rejectGit('credentials_in_url', 'git URLs must not contain credentials');
  }
  if (user.startsWith('-')) throw rejectGit('option_injection', 'the user must not start with "-"');
  if (!SSH_USER.test(user)) throw rejectGit('invalid_user', 'the ssh user name is not valid');
}

function checkPort(port: string): void {
  const value = Number(port);
  if (!/^\d{1,5}$/.test(port) || value < 1 || value > 65535) {
    throw rejectGit('invalid_port', 'the URL port must be 1-65535');
  }
}

function checkRemotePath(path: string): void {
  if (path.startsWith('-')) throw rejectGit('option_injection', 'the path must not start with "-"');
  if (!REMOTE_PATH.test(path)) {
    throw rejectGit('invalid_path', 'the repository path may use only letters, digits and ._~/+-');
  }
}

async function assertPublicHost(host: string, resolve: Resolver, reject: Reject): Promise<void> {
  let addresses: string[];
  try {
    addresses = await resolve(host);
  } catch (error) {
    throw reject('unresolvable_host', `the host "${host}" could not be resolved`, error);
  }
  if (addresses.length === 0) {
    throw reject('unresolvable_host', `the host "${host}" could not be resolved`);
  }
  // Every answer must be public: a client may connect to any of them.
  if (addresses.some(isBlockedAddress)) throw blockedAddress(reject);
}

// Names no address: telling a client what an internal name resolves to would aid probing.
function blockedAddress(reject: Reject): AppError {
  return reject(
    'blocked_address',
    'the host is or resolves to a loopback, private, link-local or otherwise non-public address',
  );
}

function ipv6Words(address: string): number[] | undefined {
  let canonical: string;
  try {
    canonical = canonicalIPv6(address);
  } catch {
    return undefined;
  }
  const [head = '', tail] = canonical.split('::');
  const words = (part: string): number[] =>
    part === '' ? [] : part.split(':').map((word) => Number.parseInt(word, 16));
  const left = words(head);
  const right = tail === undefined ? [] : words(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** The WHATWG serialisation: lowercase, compressed, embedded IPv4 rewritten as hex. */
function canonicalIPv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

/** The IPv4 address an IPv6 address stands for, when it is one of the embedding forms. */
function embeddedIPv4(words: number[]): string | undefined {
  const [w0, w1, w2, w3, w4, w5, w6 = 0, w7 = 0] = words;
  const zeroTo3 = w0 === 0 && w1 === 0 && w2 === 0 && w3 === 0;
  const isMapped = zeroTo3 && w4 === 0 && w5 === 0xffff; // ::ffff:a.b.c.d
  const isTranslated = zeroTo3 && w4 === 0xffff && w5 === 0; // ::ffff:0:a.b.c.d (SIIT)
  const isNat64 = w0 === 0x64 && w1 === 0xff9b && w2 === 0 && w3 === 0 && w4 === 0 && w5 === 0;
  if (isMapped || isTranslated || isNat64) return ipv4FromWords(w6, w7);
  if (w0 === 0x2002) return ipv4FromWords(w1 ?? 0, w2 ?? 0); // 6to4
  return undefined;
}

function ipv4FromWords(high: number, low: number): string {
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

function bracket(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
