"""RagFinetuneJob: spec -> plan -> RayJob render -> status mapping -> controller."""
