"""wiki_dpr on paper from a (fake) sweep: bytes per passage, the operator's pod sizing and the
extrapolated latency follow from the measured figures, and the CLI writes and refuses clearly."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rag_job.bench import report
from rag_job.bench.cli import app
from rag_job.bench.scale import WIKI_DPR_PASSAGES, operator_sizing, scale_markdown, scale_table

#: index type -> (fixed bytes, bytes per passage, latency c, latency exponent b)
TRUTH = {"flat": (45.0, 3072.0, 0.002, 1.0), "ivfpq": (900_000.0, 200.0, 0.8, 0.4)}
SIZES = (2_000, 8_000, 32_000)


def _fake_sweep() -> dict:
    knowledge_bases, rows = [], []
    for index_type, (fixed, per, c, b) in TRUTH.items():
        for n in SIZES:
            knowledge_bases.append(
                {"passages": n, "index_type": index_type, "shards": 1, "index_mb": (fixed + per * n) / 2**20}
            )
            for mode, replicas in (("ray", 1), ("ray", 2), ("local", None)):
                ms = c * n**b * (1.5 if mode == "ray" else 1.0)
                row = report.summarize_run(
                    mode, 2, replicas, [ms, ms], 1.0, [100.0], [80.0] * (replicas or 0)
                )
                rows.append(row | {"passages": n, "index_type": index_type, "shards": 1})
    # An S=2 point must not bend the S=1 byte line.
    knowledge_bases.append({"passages": 32_000, "index_type": "flat", "shards": 2, "index_mb": 1.0})
    return {"knowledge_bases": knowledge_bases, "results": rows, "config": {"dim": 768}}


def test_table_recovers_bytes_per_passage_and_extrapolates_the_fitted_curve_per_shard():
    table = scale_table(_fake_sweep())
    assert table["passages"] == WIKI_DPR_PASSAGES == 21_015_300 and table["measured_passages"] == list(SIZES)
    rows = {row["index_type"]: row for row in table["rows"]}
    assert set(rows) == set(TRUTH)
    for index_type, (fixed, per, c, b) in TRUTH.items():
        row = rows[index_type]
        assert row["bytes_per_passage"] == pytest.approx(per) and row["fixed_bytes"] == pytest.approx(
            fixed, rel=1e-3
        )
        assert row["index_bytes"] == pytest.approx(fixed + per * WIKI_DPR_PASSAGES)
        per_shard = WIKI_DPR_PASSAGES / row["shards"]
        assert row["passages_per_shard"] == pytest.approx(per_shard)
        floor = row["extrapolated_p50"]["local (in-process floor)"]
        assert floor["ms"] == pytest.approx(c * per_shard**b) and floor["exponent"] == pytest.approx(b)
        assert row["extrapolated_p50"]["Ray R=1"]["ms"] == pytest.approx(1.5 * c * per_shard**b)
    # 64.6 GB of flat vectors cannot sit in one 64Gi pod with the operator's headroom; 4.2 GB of IVF-PQ can.
    assert rows["flat"]["shards"] > 1 and rows["ivfpq"]["shards"] == 1
    assert rows["flat"]["pods"] == rows["flat"]["shards"]
    text = scale_markdown(table)
    assert "an extrapolation" in text and "| flat | 3072 |" in text


def test_shards_are_the_fewest_whose_operator_computed_pod_fits():
    from rag_operator.common.quantities import parse_quantity

    total = 3072.0 * WIKI_DPR_PASSAGES
    sizing = operator_sizing(total, "64Gi")
    assert parse_quantity(sizing["memory_per_pod"]) <= parse_quantity("64Gi")
    # One shard fewer and the operator's pod would not fit.
    from rag_operator.common.models import RetrievalGroupSpec
    from rag_operator.common.sizing import no_kb_metadata, retrieval_memory

    fewer = sizing["shards"] - 1
    spec = RetrievalGroupSpec(replicas=fewer, shards=fewer, index_size=str(int(total)))
    assert parse_quantity(retrieval_memory(spec, "", no_kb_metadata, [])[0]) > parse_quantity("64Gi")
    tighter = operator_sizing(total, "32Gi")
    assert tighter["shards"] > sizing["shards"] and parse_quantity(
        tighter["memory_per_pod"]
    ) <= parse_quantity("32Gi")
    with pytest.raises(ValueError, match="no shard count up to 1024 fits a 1Gi retrieval pod"):
        operator_sizing(total, "1Gi")


def test_scale_table_command_writes_json_and_markdown_and_refuses_bad_input(tmp_path):
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps(_fake_sweep()))
    result = CliRunner().invoke(app, ["scale-table", "--sweep", str(sweep), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "scale.json").read_text())["rows"][0]["index_type"] == "flat"
    assert "wiki_dpr on paper" in (tmp_path / "scale.md").read_text()

    missing = CliRunner().invoke(
        app, ["scale-table", "--sweep", str(tmp_path / "none.json"), "--out", str(tmp_path)]
    )
    assert missing.exit_code == 1 and "none.json does not exist" in missing.output
    bad = CliRunner().invoke(app, ["scale-table", "--sweep", str(sweep), "--pod-memory", "lots"])
    assert bad.exit_code == 2 and "--pod-memory" in bad.output
