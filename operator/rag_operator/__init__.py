"""rag_operator: turns a RagFinetuneJob custom resource into a KubeRay RayJob.

Importing this package must stay cheap (pydantic and PyYAML only): the operator image
has no torch or Ray. `controller` (kopf, kubernetes) is imported only by `run`.
"""

__version__ = "0.1.0"
