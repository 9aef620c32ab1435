"""Layout numbers of a RagRetrievalCluster: shards, actors per shard, retrieval pod memory.

Pure: kb.json comes through the same `read_kb` hook the RagFinetuneJob plan takes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..common import names, sizing
from ..common.errors import SpecError
from ..common.pods import pod_overrides_problems
from .spec import RagRetrievalClusterSpec


@dataclass(frozen=True)
class ClusterPlan:
    """What the RayCluster, the service RayJob and the status need."""

    shards: int
    retrieval_pods: int
    actors: int
    actors_per_shard: int
    memory_per_pod: str
    memory_computed: bool
    index_size: str | None
    trainer_workers_per_pod: int


def plan_retrieval_cluster(
    name: str, spec: RagRetrievalClusterSpec, read_kb: sizing.KbReader = sizing.read_kb_metadata
) -> ClusterPlan:
    """Check the layout and size the retrieval pods; SpecError names every field to fix."""
    problems = sizing.check_name(
        name, names.MAX_RRC_NAME_LENGTH, f"the RayCluster and the RayJob {name}{names.SERVICE_SUFFIX}"
    )
    retrieval = spec.retrieval
    if retrieval.replicas < 1:
        problems.append(("spec.retrieval.replicas", "must be at least 1: the cluster serves retrieval"))
    else:
        problems += sizing.check_retrieval_actors(retrieval, spec.actor_cpus, "actorCpus")
    problems += sizing.check_positive_cpu(spec.trainers.cpu, "spec.trainers.cpu")
    problems += pod_overrides_problems(
        spec, {"head": spec.head, "retrieval": spec.retrieval, "trainers": spec.trainers}
    )
    memory, computed, index_size = sizing.retrieval_memory(retrieval, spec.knowledge_base, read_kb, problems)
    if problems:
        raise SpecError(problems)
    actors = retrieval.replicas * retrieval.actors_per_pod
    return ClusterPlan(
        shards=retrieval.shards,
        retrieval_pods=retrieval.replicas,
        actors=actors,
        actors_per_shard=actors // retrieval.shards,
        memory_per_pod=memory,
        memory_computed=computed,
        index_size=index_size,
        trainer_workers_per_pod=spec.trainers.workers,
    )
