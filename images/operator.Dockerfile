# The controller image: slim Python with kopf and the kubernetes client, no torch, non-root.
# Build from the repository root: docker build -f images/operator.Dockerfile -t IMAGE .
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY rag_job/ rag_job/
COPY operator/ operator/
# A virtualenv copied whole into the runtime stage: no compilers or pip caches ship.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt ".[operator]" \
    && /opt/venv/bin/python -m rag_operator --help >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="rag-finetune-operator" \
      org.opencontainers.image.description="Controller turning RagFinetuneJobs into KubeRay RayJobs" \
      org.opencontainers.image.source="https://github.com/rag-finetune/rag-finetune-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A fixed numeric uid so Kubernetes' runAsNonRoot can verify it; the chart uses the same ids.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["python", "-m", "rag_operator"]
CMD ["run", "--liveness-port", "8080"]
