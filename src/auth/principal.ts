import type { Scope, SessionTransport } from './auth.tables.js';

/** A signed-in person: an access token of one of their sessions, by header or cookie. */
export interface SessionCredential {
  kind: 'session';
  sessionId: string;
  tokenId: string;
  expiresAt: Date;
  transport: SessionTransport;
}

/** An API token: its owner's roles, narrowed to its scopes and perhaps to one project. */
export interface ApiTokenCredential {
  kind: 'api_token';
  apiTokenId: string;
  scopes: readonly Scope[];
  projectId: string | null;
}

/** Who is calling: resolved once per request by the authentication hook. */
export interface Principal {
  userId: string;
  isInstanceAdmin: boolean;
  credential: SessionCredential | ApiTokenCredential;
}

/** The session behind a principal; throws when the caller used an API token. */
export function sessionOf(principal: Principal): SessionCredential {
  if (principal.credential.kind !== 'session') throw new Error('expected a session credential');
  return principal.credential;
}
