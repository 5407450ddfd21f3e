# One image for both processes: `node dist/api/server.js` (the default) or `node dist/worker/main.js`,
# each with the heap settings of shared/node-flags.ts.

# build: compile TypeScript and the sqlite3 addon, then drop dev dependencies
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
# swagger-ui-dist pulls in @scarf/scarf, whose install script reports downloads: not from here
ENV SCARF_ANALYTICS=false
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY shared shared
COPY api api
COPY worker worker
COPY bin bin
RUN npm run build && npm prune --omit=dev

# run: only the compiled code and production dependencies, as the unprivileged node user
FROM node:20-bookworm-slim
ARG GIT_COMMIT=
# MALLOC_ARENA_MAX: see shared/node-flags.ts
ENV NODE_ENV=production \
    GIT_COMMIT=${GIT_COMMIT} \
    MALLOC_ARENA_MAX=2
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
RUN mkdir -p /app/data && chown node:node /app/data
USER node
# 3000: the API; 9464: a worker's /metrics and /health/live
EXPOSE 3000 9464
# the API's liveness; a worker container overrides it with its metrics port (docker-compose.yml)
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "--max-semi-space-size=8", "--heap-growing-percent=50", "dist/api/server.js"]
