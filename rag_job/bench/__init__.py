"""Benchmarks: retrieval modes side by side, and training with each retrieval mode."""
