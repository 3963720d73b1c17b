# Packflow replicas for people with Docker. The broker comes from the official Apache Kafka
# image (see docker-compose.yml); this image holds only Python, Packflow and its backends.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY packflow packflow
COPY consumer consumer
COPY backends backends
COPY schemas schemas
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# `--build-arg EXTRAS=torch` adds the torch backends (torch_mlp, text_embedding; PyPI's
# torch is the CUDA build: run with `--gpus all` for a GPU).
ARG EXTRAS=""
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --find-links /wheels "$(ls /wheels/packflow-*.whl)${EXTRAS:+[$EXTRAS]}" \
    && rm -rf /wheels \
    && useradd --create-home --uid 10001 packflow
USER packflow
WORKDIR /home/packflow
# /metrics, /healthz and /readyz with `--metrics-port 9100` (PACKFLOW_METRICS_PORT).
EXPOSE 9100
ENTRYPOINT ["packflow"]
CMD ["--help"]
