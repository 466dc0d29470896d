import * as oidc from 'openid-client';
import type { Logger } from 'pino';
import { AppError } from '../platform/errors.js';
import type { Db } from '../platform/db/transaction.js';
import type { Role, UserRow } from '../platform/db/schema.js';
import type { OidcConfig } from './auth.config.js';
import type { AuthService, ClientInfo, IssuedSession } from './auth.service.js';
import { findUserByEmail, insertUser } from './auth.repository.js';
import * as repo from './oidc.repository.js';
import { NO_PASSWORD } from './password.js';
import { recordSecurityEvent } from './security-events.js';

/** What the browser keeps (in an HttpOnly cookie) between the redirect and the callback. */
export interface OidcLoginState {
  state: string;
  nonce: string;
  codeVerifier: string;
  redirectPath: string;
}

const RANK: Record<Role, number> = { readonly: 0, developer: 1, admin: 2, owner: 3 };
const DISCOVERY_TIMEOUT_SECONDS = 10;

const notConfigured = () =>
  new AppError('OIDC_NOT_CONFIGURED', 'Single sign-on is not configured on this instance');
const refused = (message: string, cause?: unknown) =>
  new AppError('OIDC_SIGN_IN_FAILED', message, { cause });

/** Only a path on this site: never another origin (no open redirect). */
export function safeRedirectPath(raw: string | undefined): string {
  if (raw === undefined || !raw.startsWith('/') || raw.startsWith('//') || raw.startsWith('/\\'))
    return '/';
  return raw;
}

function groupsOf(claims: Record<string, unknown>, claim: string): string[] {
  const value = claims[claim];
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === 'string');
  return [];
}

/** Several groups may map to one project: the highest role wins, with the broadest scope. */
function strongest(grants: repo.DesiredGrant[]): repo.DesiredGrant[] {
  const byProject = new Map<string, repo.DesiredGrant>();
  for (const grant of grants) {
    const current = byProject.get(grant.projectId);
    const isStronger =
      current === undefined ||
      RANK[grant.role] > RANK[current.role] ||
      (RANK[grant.role] === RANK[current.role] && grant.environmentId === null);
    if (isStronger) byProject.set(grant.projectId, grant);
  }
  return [...byProject.values()];
}

/**
 * Single sign-on with OpenID Connect: authorization code flow with PKCE, state and nonce.
 * Provider groups become project roles (per-project mappings and the instance-wide list in
 * configuration) and, for the configured admin groups, instance administration.
 */
export function createOidcService(deps: {
  db: Db;
  logger: Logger;
  config: OidcConfig | undefined;
  auth: AuthService;
}) {
  const { db, logger } = deps;
  let discovered: Promise<oidc.Configuration> | undefined;

  function settings(): OidcConfig {
    if (deps.config === undefined) throw notConfigured();
    return deps.config;
  }

  async function configuration(): Promise<oidc.Configuration> {
    const config = settings();
    const isPlainHttp = new URL(config.issuer).protocol === 'http:';
    discovered ??= oidc
      // client_secret_basic: the authentication every provider must support (RFC 6749 §2.3.1).
      .discovery(
        new URL(config.issuer),
        config.clientId,
        undefined,
        oidc.ClientSecretBasic(config.clientSecret),
        {
          timeout: DISCOVERY_TIMEOUT_SECONDS,
          // Only loopback issuers may be plain http; loadConfig refuses the others.
          ...(isPlainHttp ? { execute: [oidc.allowInsecureRequests] } : {}),
        },
      )
      .catch((error: unknown) => {
        discovered = undefined;
        throw new AppError('DEPENDENCY_UNAVAILABLE', 'The identity provider cannot be reached', {
          cause: error,
        });
      });
    return discovered;
  }

  async function desiredGrants(groups: string[]): Promise<repo.DesiredGrant[]> {
    const grants = await repo.projectMappingsFor(db, groups);
    for (const mapping of settings().groupRoles) {
      if (!groups.includes(mapping.group)) continue;
      const target = await repo.findProjectTarget(db, mapping.project, mapping.environment);
      if (target === undefined) {
        logger.warn(
          { project: mapping.project, group: mapping.group },
          'group mapping names a missing project',
        );
        continue;
      }
      grants.push({ ...target, role: mapping.role });
    }
    return strongest(grants);
  }

  async function findOrCreateUser(
    issuer: string,
    claims: Record<string, unknown>,
  ): Promise<UserRow> {
    const subject = String(claims['sub']);
    const linked = await repo.findUserByIdentity(db, issuer, subject);
    if (linked !== undefined) return linked;

    const email =
      typeof claims['email'] === 'string' ? claims['email'].trim().toLowerCase() : undefined;
    if (email === undefined || email === '')
      throw refused('The identity provider did not share an email address');
    const existing = await findUserByEmail(db, email);
    // Linking to an existing account is safe only when the provider vouches for the address.
    if (existing !== undefined && claims['email_verified'] !== true) {
      throw refused(
        'An account with this email exists and the provider has not verified the address',
      );
    }
    const name =
      typeof claims['name'] === 'string' && claims['name'] !== ''
        ? claims['name'].slice(0, 200)
        : email;
    const user = existing ?? (await insertUser(db, { email, name, passwordHash: NO_PASSWORD }));
    if (user === undefined) throw refused('The account could not be created; try again');
    await repo.linkIdentity(db, issuer, subject, user.id);
    return user;
  }

  async function applyGroups(user: UserRow, groups: string[]): Promise<UserRow> {
    const changes = await repo.syncSsoMemberships(db, user.id, await desiredGrants(groups));
    for (const change of changes) {
      recordSecurityEvent(logger, {
        type: 'member.changed',
        projectId: change.projectId,
        memberId: user.id,
        byUserId: user.id,
        change: change.change,
        role: change.role,
        source: 'oidc',
      });
    }
    const isAdminByGroup = settings().adminGroups.some((group) => groups.includes(group));
    if (!isAdminByGroup || user.is_instance_admin) return user;
    return (await repo.grantInstanceAdmin(db, user.id)) ?? user;
  }

  return {
    isConfigured: () => deps.config !== undefined,

    /** Starts a sign-in: the provider URL to send the browser to, and the state to keep. */
    async beginLogin(
      redirect: string | undefined,
    ): Promise<{ url: string; state: OidcLoginState }> {
      const config = await configuration();
      const state: OidcLoginState = {
        state: oidc.randomState(),
        nonce: oidc.randomNonce(),
        codeVerifier: oidc.randomPKCECodeVerifier(),
        redirectPath: safeRedirectPath(redirect),
      };
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: settings().redirectUri,
        scope: settings().scopes,
        response_type: 'code',
        code_challenge: await oidc.calculatePKCECodeChallenge(state.codeVerifier),
        code_challenge_method: 'S256',
        state: state.state,
        nonce: state.nonce,
      });
      return { url: url.href, state };
    },

    /**
     * Finishes a sign-in from the provider's redirect: exchanges the code (with the PKCE
     * verifier), checks state and nonce, maps groups to roles and starts a browser session.
     */
    async completeLogin(
      query: URLSearchParams,
      state: OidcLoginState | undefined,
      client: ClientInfo,
    ): Promise<IssuedSession & { redirectPath: string }> {
      const config = await configuration();
      if (state === undefined)
        throw refused('The sign-in began in another browser or expired; start again');
      const callback = new URL(settings().redirectUri);
      callback.search = query.toString();
      let claims: Record<string, unknown>;
      try {
        const tokens = await oidc.authorizationCodeGrant(config, callback, {
          pkceCodeVerifier: state.codeVerifier,
          expectedState: state.state,
          expectedNonce: state.nonce,
          idTokenExpected: true,
        });
        const idClaims: Record<string, unknown> = tokens.claims() ?? {};
        const userInfo = await oidc.fetchUserInfo(
          config,
          tokens.access_token,
          String(idClaims['sub']),
        );
        claims = { ...idClaims, ...userInfo };
      } catch (error) {
        recordSecurityEvent(
          logger,
          { type: 'sign_in.failed', reason: 'oidc_refused' },
          { clientIp: client.ip },
        );
        throw refused('The identity provider refused the sign-in', error);
      }

      const user = await applyGroups(
        await findOrCreateUser(config.serverMetadata().issuer, claims),
        groupsOf(claims, settings().groupsClaim),
      );
      if (user.status !== 'active') {
        recordSecurityEvent(
          logger,
          { type: 'sign_in.failed', reason: 'disabled' },
          { clientIp: client.ip },
        );
        throw refused('This account is disabled');
      }
      const session = await deps.auth.startSession(
        user,
        { method: 'oidc', transport: 'cookie' },
        client,
      );
      return { ...session, redirectPath: state.redirectPath };
    },
  };
}

export type OidcService = ReturnType<typeof createOidcService>;
