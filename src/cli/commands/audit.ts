import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { JSONWebKeySet } from 'jose';
import { verifyExport } from '../../audit/audit-export.js';
import type { AuditVerifyResponse } from '../client.js';
import { arg, CliError, EXIT, requireFlag, type Command, type CommandGroup } from '../context.js';
import { formatFields } from '../output.js';

/** Exit code of a verification that found a break: the evidence cannot be trusted. */
const BROKEN = EXIT.FAILURE;

const verify: Command = {
  name: 'audit verify',
  summary: 'walk the audit hash chain on the server and report the first break (instance admins)',
  synopsis: '',
  arity: [0, 0],
  options: {},
  async run(ctx) {
    const client = await ctx.client();
    const report = await client.verifyAuditChain();
    ctx.out.result(report, () => describeVerify(report));
    return report.ok ? EXIT.OK : BROKEN;
  },
};

function describeVerify(report: AuditVerifyResponse): string {
  const broken = report.firstBreak;
  return formatFields([
    [
      'chain',
      broken === null
        ? 'intact'
        : `BROKEN at event ${broken.seq}${broken.eventId === null ? '' : ` (${broken.eventId})`}`,
    ],
    ...(broken === null
      ? []
      : ([['reason', `${broken.reason}: ${broken.message}`]] as Array<[string, string]>)),
    ['events checked', report.checkedEvents],
    ['head', `${report.head.seq} ${report.head.hash}`],
    [
      'checkpoints',
      `${report.checkpoints.checked} verified${report.checkpoints.unverifiable > 0 ? `, ${report.checkpoints.unverifiable} signed by retired keys` : ''}`,
    ],
  ]);
}

const verifyExportCommand: Command = {
  name: 'audit verify-export',
  summary:
    'check an NDJSON audit export offline against saved public keys (/.well-known/jwks.json)',
  synopsis: '<export.ndjson> --jwks <jwks.json>',
  arity: [1, 1],
  options: { jwks: { type: 'string' } },
  async run(ctx) {
    const file = arg(ctx, 0);
    const jwksPath = requireFlag(ctx.flags, 'jwks');
    let jwks: JSONWebKeySet;
    try {
      jwks = JSON.parse(await readFile(jwksPath, 'utf8')) as JSONWebKeySet;
    } catch (error) {
      throw new CliError(
        `cannot read the key set ${jwksPath}: ${(error as Error).message}`,
        EXIT.VALIDATION,
      );
    }
    const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
    let result;
    try {
      result = await verifyExport(lines, jwks);
    } catch (error) {
      throw new CliError(
        `cannot read the export ${file}: ${(error as Error).message}`,
        EXIT.VALIDATION,
      );
    }
    ctx.out.result(result, () =>
      formatFields([
        ['export', result.ok ? 'verified' : `NOT VERIFIED: ${result.problem ?? 'unknown problem'}`],
        ...(result.firstBreak === null
          ? []
          : ([
              ['first break', `event ${result.firstBreak.seq}: ${result.firstBreak.reason}`],
            ] as Array<[string, string]>)),
        ['events', result.events],
        ['withheld (hash only)', result.links],
        [
          'signed checkpoint',
          result.checkpoint === null
            ? null
            : `${result.checkpoint.seq} by key ${result.checkpoint.keyId} at ${result.checkpoint.signedAt}`,
        ],
      ]),
    );
    return result.ok ? EXIT.OK : BROKEN;
  },
};

export const audit: CommandGroup = {
  name: 'audit',
  summary: 'verify the audit trail: on the server, or an export offline',
  subcommands: [verify, verifyExportCommand],
};
