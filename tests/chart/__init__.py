"""Helm chart tests: lint, render, schema validation, RBAC against the controller's needs."""
