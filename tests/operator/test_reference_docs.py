"""docs/configuration.md is generated from the models; it must not drift from them."""

from __future__ import annotations

from pathlib import Path

from rag_operator.reference import reference_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_reference_matches_the_models():
    assert DOC.read_text() == reference_markdown(), "regenerate it: make docs"


def test_reference_lists_fields_with_their_constraints():
    text = reference_markdown()
    assert "| `spec.job.training.learning_rate` | number |  | > 0 |" in text
    assert "one of `ray`, `torch`, `local`" in text
    assert "## RagRetrievalCluster" in text
