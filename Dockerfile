FROM python:3.11-slim
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
# Optional extras, e.g. --build-arg EXTRAS=tracing (OpenTelemetry export for CONVENE_TRACING).
ARG EXTRAS=""
RUN uv sync --frozen --no-dev ${EXTRAS:+--extra $EXTRAS}
ENV PATH="/app/.venv/bin:$PATH" CONVENE_HOME=/var/lib/convene
EXPOSE 8000
CMD ["convene", "serve", "--host", "0.0.0.0", "--port", "8000"]
