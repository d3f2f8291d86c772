# kubehub: console, API, rule engine and log shipper in one image.
# Build:  docker build -t kubehub .
# Run:    docker run -p 8080:8080 -v kubehub-data:/data \
#           -e KUBEHUB_PROMETHEUS_URL=http://prometheus:9090 kubehub
# The console's charting library, from the npm registry (docs/console.md); served by the hub.
FROM node:20-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
COPY web/frontend ./web/frontend
RUN npm ci --no-audit --no-fund && npm run build

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY web ./web
COPY --from=assets /src/web/static/vendor ./web/static/vendor
COPY sandbox ./sandbox
COPY rules ./rules
RUN pip install --no-cache-dir build && python -m build --wheel --outdir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin kubehub \
 && mkdir -p /data && chown kubehub /data
COPY --from=build /wheels /wheels
# The wheel carries the console (templates, static files) and the built-in policy templates
# (/usr/local/share/kubehub/rules). tests/integration/test_image_steps.py runs these steps without Docker.
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENV KUBEHUB_DATA_DIR=/data \
    KUBEHUB_HTTP_HOST=0.0.0.0 \
    KUBEHUB_HTTP_PORT=8080 \
    PYTHONUNBUFFERED=1
USER kubehub
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["kubehub"]
CMD ["serve"]
