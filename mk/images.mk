# Container images: the operator (slim, no torch) and the Ray job (CPU and GPU variants).
# Built with Docker where a Docker engine runs; elsewhere `make images` stops with a clear message.

VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
IMAGE_REGISTRY ?= ghcr.io/rag-finetune
OPERATOR_IMAGE ?= $(IMAGE_REGISTRY)/rag-finetune-operator:$(VERSION)
JOB_IMAGE_CPU ?= $(IMAGE_REGISTRY)/rag-job:$(VERSION)-cpu
JOB_IMAGE_GPU ?= $(IMAGE_REGISTRY)/rag-job:$(VERSION)-gpu
RAY_IMAGE ?= rayproject/ray:2.60.0-py311
DOCKER ?= docker
HADOLINT ?= $(VENV)/bin/hadolint

.PHONY: _need-docker
_need-docker:
	@if ! $(DOCKER) info >/dev/null 2>&1; then \
	  echo "images: no Docker engine answers here ('$(DOCKER) info' failed): images can only be built where Docker runs (e.g. CI)"; \
	  exit 1; fi

.PHONY: images
images: image-operator image-job-cpu image-job-gpu ## build the operator image and the CPU and GPU job images (needs Docker)

.PHONY: image-operator
image-operator: _need-docker ## build the operator image $(OPERATOR_IMAGE)
	$(DOCKER) build -f images/operator.Dockerfile -t $(OPERATOR_IMAGE) .

.PHONY: image-job-cpu
image-job-cpu: _need-docker ## build the CPU job image $(JOB_IMAGE_CPU)
	$(DOCKER) build -f images/job.Dockerfile --build-arg BASE_IMAGE=$(RAY_IMAGE)-cpu -t $(JOB_IMAGE_CPU) .

.PHONY: image-job-gpu
image-job-gpu: _need-docker ## build the GPU job image $(JOB_IMAGE_GPU) (CUDA torch from PyPI)
	$(DOCKER) build -f images/job.Dockerfile --build-arg BASE_IMAGE=$(RAY_IMAGE)-gpu --build-arg TORCH_INDEX_URL= -t $(JOB_IMAGE_GPU) .

.PHONY: images-lint
images-lint: install ## hadolint every Dockerfile in images/
	$(HADOLINT) images/*.Dockerfile
