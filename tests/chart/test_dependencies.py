"""`helm dependency list` finds every dependency of the chart at the version Chart.yaml asks for:
the vendored kopf-peering subchart must carry the version the parent declares, or Helm reports
"wrong version" (and `helm dependency build` would try to fetch it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from .conftest import CHART_DIR, run_helm

#: `helm dependency list` statuses of a dependency that is present at the declared version: "ok"
#: for a packaged archive in charts/, "unpacked" for a vendored directory (as kopf-peering is).
HEALTHY = {"ok", "unpacked"}


def dependency_statuses(helm: Path, chart: Path) -> dict[str, tuple[str, str]]:
    """name -> (version, status), parsed from `helm dependency list`'s tab-separated table."""
    proc = run_helm(helm, "dependency", "list", str(chart))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    header = [cell.strip() for cell in lines[0].split("\t")]
    assert header == ["NAME", "VERSION", "REPOSITORY", "STATUS"], proc.stdout
    rows = [dict(zip(header, (cell.strip() for cell in line.split("\t")), strict=True)) for line in lines[1:]]
    return {row["NAME"]: (row["VERSION"], row["STATUS"]) for row in rows}


def test_every_dependency_is_present_at_its_declared_version(helm_bin: Path) -> None:
    declared = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["dependencies"]
    statuses = dependency_statuses(helm_bin, CHART_DIR)
    assert set(statuses) == {d["name"] for d in declared}
    bad = {name: status for name, (_, status) in statuses.items() if status not in HEALTHY}
    assert bad == {}, f"helm dependency list: {bad}"
    for dep in declared:
        vendored = yaml.safe_load((CHART_DIR / "charts" / dep["name"] / "Chart.yaml").read_text())
        assert vendored["version"] == dep["version"] == statuses[dep["name"]][0]


def test_the_status_check_catches_a_version_mismatch(helm_bin: Path, tmp_path: Path) -> None:
    """The parse and the check bite: a copy of the chart whose dependency asks for another version
    than the vendored subchart's is reported "wrong version"."""
    chart = tmp_path / CHART_DIR.name
    shutil.copytree(CHART_DIR, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    (dep,) = meta["dependencies"]
    dep["version"] = "9.9.9"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    assert dependency_statuses(helm_bin, chart)[dep["name"]] == ("9.9.9", "wrong version")
