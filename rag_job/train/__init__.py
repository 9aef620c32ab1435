"""Fine-tuning on Ray Train: the driver, the per-worker loop, data, evaluation, metrics, model I/O."""
