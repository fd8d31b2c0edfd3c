# Cairn: the etcd-compatible server and its Kubernetes operator in one image.
#   default entrypoint   node dist/server/main.js <etcd flags>   (ETCD_* environment variables work too)
#   operator             command: ["node", "dist/operator/main.js"]
# Build with any engine (BuildKit or buildah: the npm cache mount keeps rebuilds fast):
#   docker build -t cairn:dev .
#   docker build --build-arg BASE=node:20-bookworm-slim -t cairn:dev .
# `npm run image` builds this file with buildah on a base assembled from this machine's Node runtime
# (hack/image.sh) and imports it into the local Kubernetes' containerd.
ARG BASE=node:20-bookworm-slim

# Production dependencies only, installed from package-lock.json alone (the package.json npm ci wants
# is rebuilt from the lock's root entry), so an edit of package.json's scripts keeps this layer
# cached. Install scripts are not needed (lmdb and msgpackr-extract load prebuilt binaries).
FROM ${BASE} AS deps
WORKDIR /app
COPY package-lock.json ./
RUN node -e "const r=require('./package-lock.json').packages['']; require('fs').writeFileSync('package.json', JSON.stringify({name:r.name,version:r.version,dependencies:r.dependencies,devDependencies:r.devDependencies}))"
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline

# The compiler and the sources: only the server, the wire types and the operator are compiled.
FROM ${BASE} AS build
WORKDIR /app
COPY package-lock.json ./
RUN node -e "const r=require('./package-lock.json').packages['']; require('fs').writeFileSync('package.json', JSON.stringify({name:r.name,version:r.version,dependencies:r.dependencies,devDependencies:r.devDependencies}))"
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --ignore-scripts --no-audit --no-fund --prefer-offline
# The real package.json ("type": "module" decides how tsc emits).
COPY package.json tsconfig.json ./
COPY proto proto
COPY server server
COPY operator operator
# Incremental: the previous build's outputs and .tsbuildinfo live in a cache mount, so a small
# change re-checks and re-emits little (a plain engine without cache mounts compiles everything).
RUN --mount=type=cache,target=/cache/tsc,sharing=locked \
    node node_modules/typescript/bin/tsc -p tsconfig.json --incremental \
      --tsBuildInfoFile /cache/tsc/build.tsbuildinfo --outDir /cache/tsc/dist \
 && cp -r /cache/tsc/dist dist && test -f dist/server/main.js

FROM ${BASE}
WORKDIR /app
ENV NODE_ENV=production
COPY package.json ./
COPY --from=deps /app/node_modules node_modules
COPY --from=build /app/dist dist
# The gateway reads the etcd API's .proto files at start (proto/etcd above dist/).
COPY proto/etcd proto/etcd
# etcd's client and peer ports.
EXPOSE 2379 2380
ENTRYPOINT ["node", "dist/server/main.js"]
