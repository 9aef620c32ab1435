"""docs/configuration.md is generated from the models; it must not drift from them."""

from __future__ import annotations

from pathlib import Path

from rag_operator.reference import reference_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_reference_matches_the_models():
    assert DOC.read_text() == reference_markdown(), "regenerate it: make docs"


def test_reference_lists_fields_with_their_constraints():
    text = reference_markdown()
    assert "| `spec.job.training.learning_rate` | number |  | `3e-05` | > 0 |" in text
    assert "one of `ray`, `torch`, `local`" in text
    assert "## RagRetrievalCluster" in text


def test_reference_shows_what_the_api_server_fills_and_what_the_operator_decides():
    text = reference_markdown()
    assert "| `spec.security.runAsUser` | integer |  | `1000` |" in text
    assert "| `spec.rayJob` | object |  | `{}` |" in text
    assert (
        "| `spec.trainers.cpu` | int or string |  | by the operator: `4` (the cluster's with retrievalClusterRef) |"
        in text
    )
    assert "| `spec.job.name` | string |  | by the operator: the RagFinetuneJob's name |" in text
    assert "| `spec.head` | object |  |  |" in text  # a shared job must omit it: no `{}`
