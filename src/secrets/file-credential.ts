import { readFileSync, statSync } from 'node:fs';
import { knownSecrets } from '../platform/known-secrets.js';

/**
 * A credential Switchyard itself uses (a Vault token, git host tokens), kept in a file
 * rather than an environment variable. Every read checks the file's identity (inode, size,
 * modification and change times) and re-reads it when any changed, so replacing the file —
 * in place or by rename, as Kubernetes does with mounted secrets — takes effect on the next
 * use, without a restart. The content is never logged or put in an error message.
 */
export class FileCredential {
  readonly path: string;
  #stamp = '';
  #value = '';

  constructor(path: string) {
    this.path = path;
  }

  /** The file's content without its trailing newline. Throws when it cannot be read. */
  read(): string {
    let stamp: string;
    try {
      const stat = statSync(this.path);
      stamp = `${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;
    } catch (error) {
      throw new Error(`credential file ${this.path} cannot be read`, { cause: error });
    }
    if (stamp !== this.#stamp) {
      this.#value = readFileSync(this.path, 'utf8').replace(/\r?\n$/, '');
      this.#stamp = stamp;
      knownSecrets.add(this.#value);
    }
    return this.#value;
  }
}

export interface GitCredential {
  username: string;
  password: string;
}

/**
 * Git host credentials from a git-credentials file (`https://user:token@host[/path]`, one per
 * line, the format `git credential-store` writes). A repository gets the credential of its
 * own host only — never another host's — and none when the file names its host nowhere.
 */
export function gitCredentialFor(
  file: FileCredential,
  repositoryUrl: string,
): GitCredential | undefined {
  return gitCredentialIn(file.read(), repositoryUrl);
}

/** The credential for the repository's host in git-credentials text, if it names that host. */
export function gitCredentialIn(text: string, repositoryUrl: string): GitCredential | undefined {
  let host: string;
  try {
    const url = new URL(repositoryUrl);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
    host = url.host.toLowerCase();
  } catch {
    return undefined;
  }
  let found: GitCredential | undefined;
  for (const line of text.split(/\r?\n/)) {
    const entry = parseCredentialLine(line.trim());
    // Every token in the text is a secret, not only the one this repository gets.
    if (entry !== undefined) knownSecrets.add(entry.password);
    if (entry !== undefined && entry.host === host && found === undefined) {
      found = { username: entry.username, password: entry.password };
    }
  }
  return found;
}

function parseCredentialLine(line: string): (GitCredential & { host: string }) | undefined {
  if (line === '' || line.startsWith('#')) return undefined;
  try {
    const url = new URL(line);
    if (url.password === '') return undefined;
    return {
      host: url.host.toLowerCase(),
      username: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
    };
  } catch {
    return undefined;
  }
}
