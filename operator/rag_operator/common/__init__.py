"""What both custom resources share: names, errors, pod-level models, sizing, pod and group
builders, manifests, conditions and kube client helpers. Imports nothing of finetunejob/ or
retrievalcluster/ (dependencies run finetunejob -> retrievalcluster -> common)."""
