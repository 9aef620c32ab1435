"""rag_operator: turns RagFinetuneJob resources into KubeRay RayJobs and RagRetrievalCluster
resources into RayClusters that hold an index for many jobs, and mirrors their status back.

Importing this package must stay cheap (pydantic and PyYAML only): the operator image has no
torch or Ray. The controllers (kopf, kubernetes) are imported only by `operator.py`, which the
`run` command loads.
"""

__version__ = "0.1.0"
