# The memory gateway as an image: `docker build -t memory-gateway .` from the repository's root, or let
# deploy/compose.yaml build it beside Ollama and Open WebUI.
FROM python:3.12-slim

# uv installs exactly what uv.lock pins; the project's own files come after, so changing them keeps the layer
# of dependencies.
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY gateway ./gateway
COPY config.toml ./
RUN uv sync --frozen --no-dev

# Reached from other containers, so on every address: the gateway starts there only with API keys set
# ([auth] keys, proxy_keys or admin_keys; see deploy/compose.yaml). Memory lives in the /data volume.
ENV GATEWAY_SERVER_HOST=0.0.0.0 \
    GATEWAY_MEMORY_DATA_DIR=/data \
    GATEWAY_UPSTREAM_URL=http://ollama:11434 \
    PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8888
RUN useradd --system --uid 10001 gateway && mkdir -p /data && chown gateway /data
USER gateway
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8888/health')"]
CMD ["/app/.venv/bin/gateway", "serve"]
