# Portico container image (docs/deploy.md, "Docker").
#   docker build -t portico .
#   docker run --rm -p 8080:8080 -v "$PWD/portico.yaml:/etc/portico/portico.yaml:ro" portico
# The config is read from /etc/portico/portico.yaml (the shipped default config
# until one is mounted there). Alpine: --build-arg NODE_IMAGE=node:22-alpine.
ARG NODE_IMAGE=node:22-slim

# ---- build: every dependency, tsc → dist/
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# ---- runtime: the runtime dependencies and dist/ only, as the unprivileged `node` user
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /opt/portico
COPY package.json package-lock.json ./
COPY scripts/prepare.mjs ./scripts/prepare.mjs
COPY --from=build /src/dist ./dist
# `prepare` finds no TypeScript here and keeps the dist/ copied above.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY examples ./examples
COPY examples/default.yaml /etc/portico/portico.yaml

# Listen on every interface inside the container; the admin API (health,
# status, config) stays on the container's loopback unless PORTICO_ADMIN says
# otherwise. Both are read by the default config; a mounted config may use them.
ENV PORTICO_LISTEN=0.0.0.0:8080 \
    PORTICO_ADMIN=127.0.0.1:9180 \
    PORTICO_HEALTH_URL=http://127.0.0.1:9180/health
EXPOSE 8080

USER node
# slim and alpine images have no curl: node asks the admin API's /health.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.PORTICO_HEALTH_URL).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The gateway drains on SIGTERM within shutdownTimeout (10s by default): give
# `docker stop` more than that, e.g. docker stop -t 15, or --stop-timeout 15 on docker run.
STOPSIGNAL SIGTERM
# node is PID 1 and handles SIGTERM/SIGINT/SIGHUP itself; --max-semi-space-size as `npm start` (docs/performance.md).
ENTRYPOINT ["node", "--max-semi-space-size=32", "/opt/portico/dist/cli/main.js"]
CMD ["start", "/etc/portico/portico.yaml"]
