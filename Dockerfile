# Switchyard's container image: a build stage with the dev dependencies compiles TypeScript, a
# runtime stage on a slim Node base carries only the production dependencies, dist/, bin/ and
# migrations/. The image runs as an unprivileged user with a fixed uid so Kubernetes can check
# runAsNonRoot and volumes can be owned by it.
#
#   docker build -t switchyard .
#   docker build --build-arg NODE_MAJOR=22 -t switchyard:node22 .
#
# Supported Node lines: 20, 22 and 24.
ARG NODE_MAJOR=20

FROM node:${NODE_MAJOR}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:${NODE_MAJOR}-bookworm-slim AS runtime

# git (and ssh for ssh:// remotes) for the local builder; npm already ships with the base image.
RUN apt-get update \
  && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
  && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 switchyard \
  && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/switchyard \
    --shell /usr/sbin/nologin switchyard \
  && mkdir -p /var/lib/switchyard \
  && chown 10001:10001 /var/lib/switchyard

WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY migrations ./migrations

# Listen on every interface inside the container (the defaults are loopback only).
ENV SWITCHYARD_DATA_DIR=/var/lib/switchyard \
  SWITCHYARD_HOST=0.0.0.0 \
  SWITCHYARD_PORT=8080 \
  SWITCHYARD_ROUTER_HOST=0.0.0.0 \
  SWITCHYARD_ROUTER_PORT=8000

VOLUME ["/var/lib/switchyard"]
USER 10001:10001
EXPOSE 8080 8000
STOPSIGNAL SIGTERM

# The API answers /healthz on SWITCHYARD_PORT; a worker-only process serves no API, so for it
# the check is that the router accepts connections.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["node", "-e", "\
const env = process.env; \
const fail = () => process.exit(1); \
if (env.SWITCHYARD_ROLE === 'worker') { \
  require('node:net').connect(Number(env.SWITCHYARD_ROUTER_PORT), '127.0.0.1', () => process.exit(0)).on('error', fail); \
} else { \
  require('node:http').get({ host: '127.0.0.1', port: Number(env.SWITCHYARD_PORT), path: '/healthz', timeout: 4000 }, \
    (res) => process.exit(res.statusCode === 200 ? 0 : 1)).on('error', fail).on('timeout', fail); \
}"]

ENTRYPOINT ["node", "bin/switchyard.js"]
CMD ["serve"]
