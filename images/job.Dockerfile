# The Ray job image: the official Ray image of the pinned Ray version plus rag_job and its
# pinned dependencies. One Dockerfile, two variants:
#   CPU: --build-arg BASE_IMAGE=rayproject/ray:2.60.0-py311-cpu (torch from the CPU wheel index)
#   GPU: --build-arg BASE_IMAGE=rayproject/ray:2.60.0-py311-gpu --build-arg TORCH_INDEX_URL=
# Build from the repository root: docker build -f images/job.Dockerfile -t IMAGE .
ARG BASE_IMAGE=rayproject/ray:2.60.0-py311-cpu
FROM ${BASE_IMAGE}

# Extra index for torch: the CPU-only wheels keep the CPU image free of CUDA libraries.
# constraints.txt pins torch==2.13.0, which the +cpu local build satisfies.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

LABEL org.opencontainers.image.title="rag-job" \
      org.opencontainers.image.description="RAG fine-tuning on Ray Train with Ray retrieval actors" \
      org.opencontainers.image.source="https://github.com/rag-finetune/rag-finetune-operator" \
      org.opencontainers.image.licenses="Apache-2.0"

# The Ray images run as the non-root user `ray` (uid 1000) and own their Python environment.
USER 1000
WORKDIR /home/ray/rag-finetune
COPY --chown=1000:100 pyproject.toml constraints.txt README.md ./
COPY --chown=1000:100 rag_job/ rag_job/
COPY --chown=1000:100 operator/ operator/
# The shipped example knowledge base: the kind tests and the demo build tiny models from it.
COPY --chown=1000:100 examples/data/ examples/data/
RUN pip install --no-cache-dir -c constraints.txt ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} ".[job]" \
    && python -c "import ray, torch, transformers, faiss; assert ray.__version__ == '2.60.0', ray.__version__" \
    && python -m rag_job --help >/dev/null
ENV PYTHONUNBUFFERED=1
