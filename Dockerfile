# One dw-mesh site. Data lives in the /data volume; the first start creates
# the node (set DW_ADMIN_PASSWORD, or read the generated one from the log).
#   docker build -t dw-mesh .
#   docker run -d -v dw-north:/data -p 127.0.0.1:8080:8080 -p 4001:4001 -e DW_ADMIN_PASSWORD=... dw-mesh
FROM node:24-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
VOLUME /data
EXPOSE 8080 4001
# Readiness, not mere liveness: the store reads and writes, the Automerge
# engine works, the disk has room (docs/operations.md, "Health").
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/readyz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# dw start exits non-zero when the node cannot go on (its Automerge engine
# failed, say): let the runtime restart it (docker run --restart unless-stopped).
CMD ["node", "bin/dw.ts", "start", "--data", "/data", "--init-if-missing", "--http", "0.0.0.0:8080"]
