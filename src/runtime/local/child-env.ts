import path from 'node:path';

import { AppError } from '../../platform/errors.js';

/** Set in every instance's environment; `init()` trusts a pid only when it carries this. */
export const INSTANCE_MARKER = 'SWITCHYARD_INSTANCE_ID';

export interface BaseEnv {
  PATH?: string;
  LANG?: string;
}

export interface ChildEnvInput {
  baseEnv: BaseEnv;
  home: string;
  specEnv: Record<string, string>;
  port: number;
  instanceId: string;
}

// Node's own folder leads so that `node` and `npm` resolve without the parent's PATH.
const DEFAULT_PATH = [
  path.dirname(process.execPath),
  '/usr/local/sbin',
  '/usr/local/bin',
  '/usr/sbin',
  '/usr/bin',
  '/sbin',
  '/bin',
].join(':');

/**
 * The whole environment of an instance: a minimal base, the deployment's variables, then
 * what the runtime owns (PORT, HOST, the marker). The parent's environment never enters.
 */
export function buildChildEnv(input: ChildEnvInput): Record<string, string> {
  return {
    PATH: input.baseEnv.PATH ?? DEFAULT_PATH,
    HOME: input.home,
    LANG: input.baseEnv.LANG ?? 'C.UTF-8',
    ...input.specEnv,
    PORT: String(input.port),
    HOST: '127.0.0.1',
    [INSTANCE_MARKER]: input.instanceId,
  };
}

/** Rejects variables the operating system cannot carry (a NUL byte, `=` in a name). */
export function assertPassableEnv(env: Record<string, string>): void {
  for (const [name, value] of Object.entries(env)) {
    const isNameValid = name.length > 0 && !name.includes('=') && !name.includes('\0');
    if (!isNameValid || value.includes('\0')) {
      throw new AppError(
        'ENV_VAR_INVALID',
        'a configuration variable cannot be passed to a process',
        {
          details: { name: isNameValid ? name : undefined },
        },
      );
    }
  }
}
