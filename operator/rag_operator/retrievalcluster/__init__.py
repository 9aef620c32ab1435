"""RagRetrievalCluster: spec -> plan -> RayCluster + service RayJob render -> status -> controller."""
