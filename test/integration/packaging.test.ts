import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

// No container engine or cluster is needed: the image definition and the Kubernetes manifests
// are parsed and checked against the code they run (config.ts, the health routes).

type Obj = Record<string, unknown>;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const K8S_DIR = join(ROOT, 'deploy', 'kubernetes');
const EXAMPLE_SECRET = 'secret.example.yaml';
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
// Names that hold credentials: they must come from a Secret, never a literal.
const SECRET_NAME = /(_URL|SECRET|TOKEN|PASSWORD)$/;

function asObj(value: unknown, where: string): Obj {
  assert.ok(
    typeof value === 'object' && value !== null && !Array.isArray(value),
    `${where}: not a mapping`,
  );
  return value as Obj;
}

function asList(value: unknown, where: string): unknown[] {
  assert.ok(Array.isArray(value), `${where}: not a list`);
  return value;
}

/** Follows a dotted path of mapping keys. */
function at(root: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((node, key) => asObj(node, path)[key], root);
}

function readManifests(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(join(K8S_DIR, file), 'utf8'));
  return docs.map((doc, index) => {
    assert.deepEqual(doc.errors, [], `${file} document ${index} does not parse`);
    return asObj(doc.toJS(), `${file} document ${index}`);
  });
}

const kustomization = readManifests('kustomization.yaml')[0];
const resourceFiles = asList(at(kustomization, 'resources'), 'resources').map(String);
const manifests = resourceFiles.flatMap(readManifests);

function find(kind: string, name: string): Obj {
  const found = manifests.find((m) => m['kind'] === kind && at(m, 'metadata.name') === name);
  assert.ok(found, `${kind}/${name} is not in kustomization.yaml's resources`);
  return found;
}

const configMap = asObj(at(find('ConfigMap', 'switchyard-config'), 'data'), 'ConfigMap data');
const api = find('Deployment', 'switchyard-api');
const worker = find('Deployment', 'switchyard-worker');
const deployments = [api, worker];

function podSpec(deployment: Obj): Obj {
  return asObj(at(deployment, 'spec.template.spec'), 'pod spec');
}

function container(deployment: Obj): Obj {
  const containers = asList(podSpec(deployment)['containers'], 'containers');
  assert.equal(containers.length, 1);
  return asObj(containers[0], 'container');
}

function envEntries(deployment: Obj): Obj[] {
  return asList(container(deployment)['env'] ?? [], 'env').map((e) => asObj(e, 'env entry'));
}

/** The plain value a container sees for a variable: its own env first, then the ConfigMap. */
function plainEnv(deployment: Obj, name: string): string | undefined {
  const own = envEntries(deployment).find((e) => e['name'] === name);
  if (own !== undefined) return typeof own['value'] === 'string' ? own['value'] : undefined;
  const fromConfigMap = configMap[name];
  return typeof fromConfigMap === 'string' ? fromConfigMap : undefined;
}

/** A probe's port as a number, resolving a named container port. */
function probePort(deployment: Obj, port: unknown): number {
  if (typeof port === 'number') return port;
  const ports = asList(container(deployment)['ports'], 'ports').map((p) => asObj(p, 'port'));
  const named = ports.find((p) => p['name'] === port);
  assert.ok(named, `no container port named ${String(port)}`);
  return Number(named['containerPort']);
}

function labelsMatch(selector: unknown, labels: unknown): boolean {
  const wanted = Object.entries(asObj(selector, 'selector'));
  const have = asObj(labels, 'labels');
  return wanted.length > 0 && wanted.every(([key, value]) => have[key] === value);
}

/** The environment variable names loadConfig reads, from config.ts and the readers it calls. */
function configVariableNames(): Set<string> {
  const configPath = join(ROOT, 'src', 'platform', 'config.ts');
  const configSource = readFileSync(configPath, 'utf8');
  const imported = [...configSource.matchAll(/from '(\.[^']+)\.js'/g)].map((m) =>
    resolve(dirname(configPath), `${m[1]}.ts`),
  );
  const sources = [configSource, ...imported.map((path) => readFileSync(path, 'utf8'))];
  const names = sources.flatMap((source) =>
    [...source.matchAll(/read\.\w+\(\s*'([A-Z][A-Z0-9_]+)'/g)].map((m) => m[1]!),
  );
  return new Set(names.flatMap((name) => [name, `${name}_FILE`]));
}

function configDefault(name: string): number {
  const source = readFileSync(join(ROOT, 'src', 'platform', 'config.ts'), 'utf8');
  const match = new RegExp(`'${name}',\\s*([0-9_]+)`).exec(source);
  assert.ok(match, `no default for ${name} in config.ts`);
  return Number(match[1]!.replaceAll('_', ''));
}

describe('Kubernetes manifests', () => {
  it('parse, and kustomization.yaml lists every manifest except the example Secret', () => {
    const onDisk = readdirSync(K8S_DIR).filter((f) => f.endsWith('.yaml'));
    const expected = onDisk.filter((f) => f !== 'kustomization.yaml' && f !== EXAMPLE_SECRET);
    assert.deepEqual([...resourceFiles].sort(), expected.sort());
    const namespace = at(kustomization, 'namespace');
    assert.equal(at(find('Namespace', String(namespace)), 'metadata.name'), namespace);
    for (const manifest of manifests.filter((m) => m['kind'] !== 'Namespace')) {
      const name = `${String(manifest['kind'])}/${String(at(manifest, 'metadata.name'))}`;
      assert.equal(at(manifest, 'metadata.namespace'), namespace, name);
    }
  });

  it('probe the API on /healthz and /readyz at the port SWITCHYARD_PORT names, on all interfaces', () => {
    assert.equal(plainEnv(api, 'SWITCHYARD_ROLE'), 'api');
    assert.equal(plainEnv(api, 'SWITCHYARD_HOST'), '0.0.0.0');
    const apiPort = Number(plainEnv(api, 'SWITCHYARD_PORT') ?? 8080);
    const expected = {
      startupProbe: '/healthz',
      livenessProbe: '/healthz',
      readinessProbe: '/readyz',
    };
    for (const [probe, path] of Object.entries(expected)) {
      const httpGet = asObj(at(container(api), `${probe}.httpGet`), probe);
      assert.equal(httpGet['path'], path, probe);
      assert.equal(probePort(api, httpGet['port']), apiPort, probe);
    }
  });

  it('probe the worker, which serves no API, at the router port', () => {
    assert.equal(plainEnv(worker, 'SWITCHYARD_ROLE'), 'worker');
    assert.equal(plainEnv(worker, 'SWITCHYARD_ROUTER_HOST'), '0.0.0.0');
    const routerPort = Number(plainEnv(worker, 'SWITCHYARD_ROUTER_PORT') ?? 8000);
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
      const tcp = asObj(at(container(worker), `${probe}.tcpSocket`), probe);
      assert.equal(probePort(worker, tcp['port']), routerPort, probe);
    }
  });

  it('run as the image’s non-root uid with a read-only root filesystem and writable volumes', () => {
    const imageUid = Number(/^USER\s+(\d+)/m.exec(DOCKERFILE)?.[1]);
    for (const deployment of deployments) {
      const pod = asObj(podSpec(deployment)['securityContext'], 'pod securityContext');
      assert.equal(pod['runAsNonRoot'], true);
      assert.equal(pod['runAsUser'], imageUid);
      assert.notEqual(pod['runAsUser'], 0);
      const own = asObj(container(deployment)['securityContext'], 'container securityContext');
      assert.equal(own['readOnlyRootFilesystem'], true);
      assert.equal(own['allowPrivilegeEscalation'], false);
      assert.deepEqual(at(own, 'capabilities.drop'), ['ALL']);

      const volumes = asList(podSpec(deployment)['volumes'], 'volumes').map((v) =>
        asObj(v, 'volume'),
      );
      const mounts = asList(container(deployment)['volumeMounts'], 'mounts').map((m) =>
        asObj(m, 'mount'),
      );
      for (const path of ['/tmp', plainEnv(deployment, 'SWITCHYARD_DATA_DIR')]) {
        const mount = mounts.find((m) => m['mountPath'] === path);
        assert.ok(mount, `${String(path)} is not mounted`);
        const volume = volumes.find((v) => v['name'] === mount['name']);
        assert.ok(
          volume && ('emptyDir' in volume || 'persistentVolumeClaim' in volume),
          `${path} is not writable`,
        );
      }
    }
  });

  it('give pods longer to stop than the preStop pause plus the shutdown deadline', () => {
    const shutdownMs = Number(
      configMap['SWITCHYARD_SHUTDOWN_TIMEOUT_MS'] ??
        configDefault('SWITCHYARD_SHUTDOWN_TIMEOUT_MS'),
    );
    for (const deployment of deployments) {
      const command = asList(
        at(container(deployment), 'lifecycle.preStop.exec.command'),
        'preStop',
      );
      assert.equal(command[0], 'sleep');
      const pauseMs = Number(command[1]) * 1000;
      const graceMs = Number(podSpec(deployment)['terminationGracePeriodSeconds']) * 1000;
      assert.ok(
        graceMs > pauseMs + shutdownMs,
        `grace ${graceMs} ms ≤ ${pauseMs} + ${shutdownMs} ms`,
      );

      const resources = asObj(container(deployment)['resources'], 'resources');
      assert.ok(at(resources, 'requests.cpu') && at(resources, 'requests.memory'));
      assert.ok(at(resources, 'limits.memory'));
    }
  });

  it('point the PodDisruptionBudget and the autoscaler at the API Deployment only', () => {
    const pdb = find('PodDisruptionBudget', 'switchyard-api');
    const selector = at(pdb, 'spec.selector.matchLabels');
    assert.deepEqual(selector, at(api, 'spec.selector.matchLabels'));
    assert.ok(labelsMatch(selector, at(api, 'spec.template.metadata.labels')));
    assert.ok(!labelsMatch(selector, at(worker, 'spec.template.metadata.labels')));

    const hpa = find('HorizontalPodAutoscaler', 'switchyard-api');
    assert.equal(hpa['apiVersion'], 'autoscaling/v2');
    assert.deepEqual(at(hpa, 'spec.scaleTargetRef'), {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: 'switchyard-api',
    });
    const metrics = asList(at(hpa, 'spec.metrics'), 'metrics').map((m) => asObj(m, 'metric'));
    assert.ok(metrics.some((m) => m['type'] === 'Resource' && at(m, 'resource.name') === 'cpu'));
    assert.ok(Number(at(hpa, 'spec.minReplicas')) >= 2);
  });

  it('route each Service to pods that declare its target port', () => {
    for (const service of manifests.filter((m) => m['kind'] === 'Service')) {
      const selector = at(service, 'spec.selector');
      const targets = deployments.filter((d) =>
        labelsMatch(selector, at(d, 'spec.template.metadata.labels')),
      );
      assert.equal(
        targets.length,
        1,
        `Service ${String(at(service, 'metadata.name'))} selects one Deployment`,
      );
      for (const port of asList(at(service, 'spec.ports'), 'ports')) {
        probePort(targets[0]!, asObj(port, 'port')['targetPort']);
      }
    }
  });

  it('set only variables that the configuration reads', () => {
    const known = configVariableNames();
    const set = [
      ...Object.keys(configMap),
      ...deployments.flatMap((d) => envEntries(d).map((e) => String(e['name']))),
    ];
    assert.deepEqual(
      set.filter((name) => !known.has(name)),
      [],
    );
  });

  it('take credentials from secretKeyRef or mounted Secret files, never literal values', () => {
    assert.deepEqual(
      Object.keys(configMap).filter((name) => SECRET_NAME.test(name)),
      [],
    );
    for (const deployment of deployments) {
      for (const entry of envEntries(deployment)) {
        if (!SECRET_NAME.test(String(entry['name']))) continue;
        assert.equal(entry['value'], undefined, `${String(entry['name'])} is a literal`);
        assert.ok(
          at(entry, 'valueFrom.secretKeyRef'),
          `${String(entry['name'])} is not from a Secret`,
        );
      }
      assert.ok(envEntries(deployment).some((e) => e['name'] === 'DATABASE_URL'));

      const mounts = asList(container(deployment)['volumeMounts'], 'mounts').map((m) =>
        asObj(m, 'mount'),
      );
      const volumes = asList(podSpec(deployment)['volumes'], 'volumes').map((v) =>
        asObj(v, 'volume'),
      );
      for (const name of ['SWITCHYARD_JWT_PRIVATE_KEY_PATH', 'SWITCHYARD_MASTER_KEY_PATH']) {
        const path = plainEnv(deployment, name);
        assert.ok(path, `${name} is not set`);
        const mount = mounts.find((m) => path.startsWith(`${String(m['mountPath'])}/`));
        const volume = volumes.find((v) => v['name'] === mount?.['name']);
        assert.ok(
          mount?.['readOnly'] === true && volume?.['secret'],
          `${name} is not a mounted Secret`,
        );
      }
    }
    const literals = [
      ...Object.values(configMap),
      ...deployments.flatMap((d) => envEntries(d).map((e) => e['value'])),
    ];
    for (const value of literals.filter((v) => typeof v === 'string')) {
      assert.doesNotMatch(
        value,
        /:\/\/[^/@\s]+:[^/@\s]+@|PRIVATE KEY/,
        'a credential is written inline',
      );
    }
  });

  it('ship an example Secret with placeholders only, holding every key the pods reference', () => {
    const secrets = readManifests(EXAMPLE_SECRET);
    const keysOf = new Map(
      secrets.map((s) => [at(s, 'metadata.name'), asObj(s['stringData'], 'stringData')]),
    );
    for (const data of keysOf.values()) {
      for (const value of Object.values(data)) assert.match(String(value), /REPLACE_ME/);
    }
    for (const deployment of deployments) {
      for (const entry of envEntries(deployment)) {
        const ref =
          entry['valueFrom'] === undefined ? undefined : at(entry, 'valueFrom.secretKeyRef');
        if (ref === undefined) continue;
        assert.ok(
          String(asObj(ref, 'ref')['key']) in (keysOf.get(asObj(ref, 'ref')['name']) ?? {}),
        );
      }
      for (const volume of asList(podSpec(deployment)['volumes'], 'volumes').map((v) =>
        asObj(v, 'volume'),
      )) {
        if (volume['secret'] === undefined) continue;
        const data = keysOf.get(at(volume, 'secret.secretName')) ?? {};
        for (const item of asList(at(volume, 'secret.items'), 'items')) {
          assert.ok(String(asObj(item, 'item')['key']) in data);
        }
      }
    }
  });
});

interface Instruction {
  keyword: string;
  args: string;
}

/** Instructions grouped by stage; line continuations joined and comments dropped. */
function dockerStages(text: string): { preamble: Instruction[]; stages: Instruction[][] } {
  const lines = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  const preamble: Instruction[] = [];
  const stages: Instruction[][] = [];
  for (const line of lines) {
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const instruction = { keyword: keyword.toUpperCase(), args };
    if (instruction.keyword === 'FROM') stages.push([]);
    (stages.at(-1) ?? preamble).push(instruction);
  }
  return { preamble, stages };
}

describe('Dockerfile', () => {
  const { preamble, stages } = dockerStages(DOCKERFILE);
  const runtime = stages.at(-1) ?? [];
  const args = (stage: Instruction[], keyword: string) =>
    stage.filter((i) => i.keyword === keyword).map((i) => i.args);

  it('builds in one stage with dev dependencies and runs from another', () => {
    assert.ok(stages.length >= 2);
    const build = stages[0]!;
    assert.ok(
      args(build, 'RUN').some((run) => /\bnpm ci\b/.test(run) && !run.includes('--omit=dev')),
    );
    assert.ok(args(build, 'RUN').some((run) => run.includes('npm run build')));
    assert.ok(args(runtime, 'RUN').some((run) => /\bnpm ci --omit=dev\b/.test(run)));
    assert.ok(args(runtime, 'COPY').some((copy) => copy.startsWith('--from=build ')));
    assert.ok(args(runtime, 'RUN').some((run) => /apt-get install .*\bgit\b/.test(run)));
  });

  it('installs only from the lockfile', () => {
    for (const run of stages.flat().filter((i) => i.keyword === 'RUN')) {
      assert.doesNotMatch(run.args, /\bnpm (install|i|add)\b/);
    }
  });

  it('starts from a Node base image pinned to a major version of at least 20', () => {
    const defaults = new Map(
      args(preamble, 'ARG').map((arg) => arg.split('=') as [string, string | undefined]),
    );
    for (const stage of stages) {
      const from = stage[0]!.args.replace(
        /\$\{(\w+)\}/g,
        (_, name: string) => defaults.get(name) ?? '',
      );
      const major = /^node:(\d+)[-.]/.exec(from)?.[1];
      assert.ok(major !== undefined && Number(major) >= 20, `unpinned or old base: ${from}`);
    }
  });

  it('runs as a fixed non-root uid, checks /healthz with node and stops on SIGTERM', () => {
    const user = args(runtime, 'USER').at(-1);
    assert.match(user ?? '', /^[1-9]\d*(:\d+)?$/);
    const healthcheck = args(runtime, 'HEALTHCHECK').join(' ');
    assert.match(healthcheck, /CMD \["node"/);
    assert.match(healthcheck, /\/healthz/);
    assert.doesNotMatch(healthcheck, /curl|wget/);
    assert.deepEqual(args(runtime, 'STOPSIGNAL'), ['SIGTERM']);
    const exposed = args(runtime, 'EXPOSE').join(' ').split(/\s+/);
    for (const name of ['SWITCHYARD_PORT', 'SWITCHYARD_ROUTER_PORT']) {
      assert.ok(exposed.includes(String(configMap[name])), `${name} is not exposed`);
    }
    assert.ok(args(runtime, 'VOLUME').some((volume) => volume.includes('/var/lib/switchyard')));
  });

  it('keeps what the image copies in the build context and dependencies out of it', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim());
    assert.ok(ignored.includes('node_modules') && ignored.includes('.git'));
    const copied = stages
      .flat()
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const source of copied) assert.ok(!ignored.includes(source), `${source} is ignored`);
  });
});
