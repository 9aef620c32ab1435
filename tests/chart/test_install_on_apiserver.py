"""The chart on a real API server (the control plane of tests/cluster, on loopback): peering mode
installs cleanly (kopf's CRDs from the subchart come before the peering object), the real RBAC
authorizer allows the chart's ServiceAccount every call the controller makes and refuses others,
the controller started with the Deployment's own args as that ServiceAccount joins the
peering and answers its liveness and readiness probes, the chart's aggregated ClusterRoles
give users bound to the built-in `edit`, `admin` and `view` roles the custom resources, and the
README's CRD upgrade command changes the CRDs Helm installed.

No nodes: the Deployment gets no pods, so the controller runs as a local process instead.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHART_DIR, REPO_ROOT, VALUES_DIR, run_helm
from .test_rbac import triples

pytestmark = pytest.mark.cluster

RELEASE_NS = "rag-system"
WATCHED = ("team-a", "team-b")  # tests/chart/values/watch-namespaces.yaml
FENCED = "team-fenced"  # watched by the release with the admission policy
#: Calls the controller never makes; the ServiceAccount must be refused each.
REFUSED = [
    ("delete", "rayjobs.ray.io"),
    ("update", "ragfinetunejobs.rag.finetune.dev"),
    ("get", "secrets"),
    ("create", "pods"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
]


@dataclass
class Cluster:
    plane: Any
    kubectl: Path

    def run(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.kubectl), f"--kubeconfig={self.plane.kubeconfig}", *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60, check=False)
        assert not check or proc.returncode == 0, f"{' '.join(args)}: {proc.stderr}"
        return proc

    def can_i(self, account: str, verb: str, resource: str, namespace: str) -> bool:
        return self.user_can(f"system:serviceaccount:{RELEASE_NS}:{account}", verb, resource, namespace)

    def may(self, account: str, verb: str, group: str, resource: str, namespace: str) -> bool:
        """A SubjectAccessReview by API group and resource, as written in an RBAC rule: unlike
        `kubectl auth can-i`, it needs no discovery, so it also answers for an API (Kueue's) whose
        CRDs this control plane does not have."""
        user = f"system:serviceaccount:{RELEASE_NS}:{account}"
        name, _, sub = resource.partition("/")
        attributes = {"verb": verb, "group": group, "resource": name, "namespace": namespace}
        if sub:
            attributes["subresource"] = sub
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": ["system:serviceaccounts"], "resourceAttributes": attributes},
        }
        proc = self.run("create", "-o", "json", "-f", "-", stdin=json.dumps(review))
        return json.loads(proc.stdout)["status"].get("allowed") is True

    def user_can(self, user: str, verb: str, resource: str, namespace: str, *extra: str) -> bool:
        """`kubectl auth can-i --as user`: a SelfSubjectAccessReview answered by the RBAC authorizer."""
        proc = self.run("auth", "can-i", verb, resource, "--as", user, "-n", namespace, *extra, check=False)
        return proc.stdout.strip() == "yes"


@pytest.fixture(scope="module")
def cluster(helm_bin: Path) -> Iterator[Cluster]:
    """A control plane with two releases: defaults (cluster-wide, peered) and watch-namespaces."""
    from localcluster.controlplane import start_control_plane
    from localcluster.toolchain import ToolchainMissing, find_toolchain
    from tests.tools import require_kubectl

    try:
        toolchain = find_toolchain()
    except ToolchainMissing as err:
        pytest.skip(f"cluster toolchain not built (`make toolchain`): {err}")
    directory = Path(tempfile.mkdtemp(prefix="rfo-chart-"))
    plane = start_control_plane(toolchain, directory)
    try:
        for ns in (RELEASE_NS, *WATCHED, FENCED):
            status, body = plane.api().request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
            assert status in (201, 409), body
        fenced = [
            "--values",
            str(VALUES_DIR / "admission-policy.yaml"),
            f'--set-json=watchNamespaces=["{FENCED}"]',
        ]
        for release, extra in (
            ("wide", []),
            ("scoped", ["--values", str(VALUES_DIR / "watch-namespaces.yaml")]),
            ("fenced", [*fenced, "--set=replicas=1", "--set=peering.enabled=false"]),
        ):
            proc = run_helm(
                helm_bin, "install", release, str(CHART_DIR), f"--kubeconfig={plane.kubeconfig}",
                "-n", RELEASE_NS, "--timeout=60s", *extra,
            )  # fmt: skip
            assert proc.returncode == 0, f"helm install {release} failed:\n{proc.stderr}"
        yield Cluster(plane=plane, kubectl=require_kubectl())
    finally:
        plane.stop()
        if not os.environ.get("RAG_KEEP_CONTROLPLANE"):
            shutil.rmtree(directory, ignore_errors=True)


def deployment(cluster: Cluster, release: str) -> dict[str, Any]:
    return json.loads(
        cluster.run(
            "-n", RELEASE_NS, "get", "deployment", f"{release}-rag-finetune-operator", "-o", "json"
        ).stdout
    )


def test_peering_objects_exist_for_each_mode(cluster: Cluster) -> None:
    wide = json.loads(cluster.run("get", "clusterkopfpeerings", "-o", "json").stdout)["items"]
    assert [p["metadata"]["name"] for p in wide] == ["wide-rag-finetune-operator"]
    scoped = json.loads(cluster.run("get", "kopfpeerings", "-A", "-o", "json").stdout)["items"]
    assert sorted(p["metadata"]["namespace"] for p in scoped) == sorted(WATCHED)


@pytest.mark.parametrize(("release", "clusterwide"), [("wide", True), ("scoped", False)])
def test_authorizer_allows_every_controller_call_and_refuses_others(
    cluster: Cluster, release: str, clusterwide: bool
) -> None:
    from rag_operator import permissions

    account = deployment(cluster, release)["spec"]["template"]["spec"]["serviceAccountName"]
    namespace = "default" if clusterwide else WATCHED[0]
    denied = [
        (verb, f"{resource}.{group}" if group else resource)
        for group, resource, verb in sorted(triples(permissions.rules(clusterwide=clusterwide)))
        if not cluster.may(account, verb, group, resource, namespace)
    ]
    assert denied == [], f"{release}: the authorizer refuses calls the controller makes: {denied}"
    allowed = [(v, r) for v, r in REFUSED if cluster.can_i(account, v, r, namespace)]
    assert allowed == [], (
        f"{release}: the ServiceAccount may make calls the controller never makes: {allowed}"
    )
    if not clusterwide:
        assert not cluster.can_i(account, "list", "ragfinetunejobs.rag.finetune.dev", "default")


def test_controller_with_the_deployment_args_joins_peering_and_is_live(cluster: Cluster) -> None:
    from localcluster.controlplane import free_port, write_kubeconfig

    plane = cluster.plane
    spec = deployment(cluster, "wide")["spec"]["template"]["spec"]
    account = spec["serviceAccountName"]
    status, body = plane.api().request(
        "POST", f"/api/v1/namespaces/{RELEASE_NS}/serviceaccounts/{account}/token", {"spec": {}}
    )
    assert status == 201, body
    kubeconfig = write_kubeconfig(
        plane.directory / "wide-operator.kubeconfig", plane.server, plane.pki.ca.cert,
        {"token": body["status"]["token"]}, namespace=RELEASE_NS,
    )  # fmt: skip
    args = list(spec["containers"][0]["args"])
    port = free_port()  # the Deployment's port may be taken on this machine
    args[args.index("--liveness-port") + 1] = str(port)
    args[args.index("--metrics-port") + 1] = str(free_port())
    log_path = plane.directory / "logs" / "wide-operator.log"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag_operator", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
        )
    container = spec["containers"][0]
    probes = {container[probe]["httpGet"]["path"] for probe in ("livenessProbe", "readinessProbe")}
    try:
        deadline, live, peers = time.monotonic() + 60, False, {}
        while time.monotonic() < deadline and not (live and peers):
            assert proc.poll() is None, f"the controller exited:\n{log_path.read_text()[-3000:]}"
            try:
                live = all(
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2).status == 200
                    for path in probes
                )
            except OSError:
                live = False
            peering = yaml.safe_load(
                cluster.run("get", "clusterkopfpeering", "wide-rag-finetune-operator", "-o", "yaml").stdout
            )
            peers = peering.get("status") or {}
            time.sleep(1)
        assert live, f"GET {probes} never answered 200:\n{log_path.read_text()[-3000:]}"
        assert peers, (
            f"the controller never wrote itself into the peering object:\n{log_path.read_text()[-3000:]}"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log = log_path.read_text()
    assert "Forbidden" not in log and " 403" not in log, log[-3000:]


def _dry_run_job(cluster: Cluster, namespace: str, **spec: Any) -> tuple[int, str]:
    """Create (dry run) the CPU example with `spec` changes in `namespace`: (status, message)."""
    doc = yaml.safe_load((REPO_ROOT / "examples" / "rag-finetune-job-cpu.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    doc["spec"].update(spec)
    path = f"/apis/rag.finetune.dev/v1alpha1/namespaces/{namespace}/ragfinetunejobs?dryRun=All"
    status, body = cluster.plane.api().request("POST", path, doc)
    return status, body.get("message", "") if isinstance(body, dict) else str(body)


def test_the_admission_policy_limits_images_and_service_accounts_where_it_is_bound(cluster: Cluster) -> None:
    """The chart's optional ValidatingAdmissionPolicy, enforced by the real API server: an image
    from an allowed registry and an allowed service account pass; others are refused naming the
    field; a namespace the release does not watch is not affected."""
    allowed = "ghcr.io/rag-finetune/rag-job:0.1.0-cpu"

    def eventually_refused() -> tuple[int, str]:
        deadline = time.monotonic() + 30  # the API server loads new policies asynchronously
        while True:
            status, message = _dry_run_job(cluster, FENCED, image="docker.io/someone/miner:1")
            if status != 201 or time.monotonic() > deadline:
                return status, message
            time.sleep(0.5)

    status, message = eventually_refused()
    assert status == 403, message
    assert "spec.image docker.io/someone/miner:1 is not from an allowed registry" in message
    assert "ghcr.io/rag-finetune/" in message
    assert _dry_run_job(cluster, FENCED, image=allowed)[0] == 201
    assert _dry_run_job(cluster, FENCED, image=allowed, serviceAccountName="ray-jobs")[0] == 201
    status, message = _dry_run_job(cluster, FENCED, image=allowed, serviceAccountName="cluster-admin-sa")
    assert status == 403 and "spec.serviceAccountName cluster-admin-sa is not allowed" in message
    for group in ("head", "trainers", "retrieval"):  # a group's pod override cannot go around it
        pod = {"pod": {"serviceAccountName": "cluster-admin-sa"}}
        status, message = _dry_run_job(cluster, FENCED, image=allowed, **{group: pod})
        assert (
            status == 403
            and f"spec.{group}.pod.serviceAccountName cluster-admin-sa is not allowed" in message
        )
        pod = {"pod": {"serviceAccountName": "ray-jobs"}}
        assert _dry_run_job(cluster, FENCED, image=allowed, **{group: pod})[0] == 201
    assert _dry_run_job(cluster, WATCHED[0], image="docker.io/someone/miner:1")[0] == 201


def test_a_disruption_budget_guards_each_multi_replica_release(cluster: Cluster) -> None:
    """The API server accepts the chart's PodDisruptionBudget; the single-replica release has none."""
    pdbs = json.loads(cluster.run("-n", RELEASE_NS, "get", "poddisruptionbudgets", "-o", "json").stdout)[
        "items"
    ]
    by_name = {p["metadata"]["name"]: p["spec"] for p in pdbs}
    assert set(by_name) == {"wide-rag-finetune-operator", "scoped-rag-finetune-operator"}
    for release in ("wide", "scoped"):
        selector = deployment(cluster, release)["spec"]["selector"]
        assert by_name[f"{release}-rag-finetune-operator"] == {"maxUnavailable": 1, "selector": selector}


@pytest.fixture(scope="module")
def aggregating(cluster: Cluster) -> Cluster:
    """The plane plus kube-controller-manager's clusterrole-aggregation controller, which fills the
    built-in `admin`, `edit` and `view` roles from labelled ClusterRoles. hack/localcluster leaves it
    out of its controller list; it is started here, alone, against the same API server, so the
    aggregation itself is exercised (plane.stop() stops it with the rest)."""
    from localcluster.controlplane import free_port, http_ok, launch, wait_until
    from localcluster.toolchain import find_toolchain

    plane, port = cluster.plane, free_port()
    kcm = launch(plane, "kcm-clusterrole-aggregation", [
        find_toolchain().kube_controller_manager, f"--kubeconfig={plane.kubeconfig}",
        "--bind-address=127.0.0.1", f"--secure-port={port}",
        f"--cert-dir={plane.directory / 'kcm-aggregation'}", "--leader-elect=false",
        "--controllers=clusterrole-aggregation",
    ])  # fmt: skip
    wait_until(kcm, lambda: http_ok(f"https://127.0.0.1:{port}/healthz"))
    return cluster


def test_default_user_roles_grant_the_custom_resources_through_aggregation(aggregating: Cluster) -> None:
    """Users bound (RoleBinding, one namespace) to the built-in `edit` may create and delete
    RagFinetuneJobs and RagRetrievalClusters there and read their status, but not write it; `view`
    may list and watch but not create; `admin` may delete. Nothing outside that namespace."""
    cluster, namespace = aggregating, WATCHED[1]
    users = {role: f"rfo-test-{role}" for role in ("edit", "view", "admin")}
    for role, user in users.items():
        cluster.run("-n", namespace, "create", "rolebinding", user, f"--clusterrole={role}", f"--user={user}")
    rfj, rrc = "ragfinetunejobs.rag.finetune.dev", "ragretrievalclusters.rag.finetune.dev"

    def can(role: str, verb: str, resource: str, *extra: str, where: str = namespace) -> bool:
        return cluster.user_can(users[role], verb, resource, where, *extra)

    deadline = time.monotonic() + 60  # the controller folds the labelled roles in asynchronously
    while not can("edit", "create", rfj) and time.monotonic() < deadline:
        time.sleep(0.5)
    edit_rules = json.loads(cluster.run("get", "clusterrole", "edit", "-o", "json").stdout)["rules"]
    ours = [rule for rule in edit_rules if "rag.finetune.dev" in rule.get("apiGroups", [])]
    assert can("edit", "create", rfj), f"`edit` never gained the chart's rules; of our group it has: {ours}"
    for verb in ("create", "update", "patch", "delete", "get", "list", "watch"):
        assert can("edit", verb, rfj) and can("edit", verb, rrc), f"edit may not {verb}"
    assert can("edit", "get", rfj, "--subresource=status")
    assert not can("edit", "patch", rfj, "--subresource=status"), "status is the operator's to write"
    assert not can("edit", "create", rfj, where="default"), "the RoleBinding grants one namespace"
    for verb in ("get", "list", "watch"):
        assert can("view", verb, rfj) and can("view", verb, rrc), f"view may not {verb}"
    for verb in ("create", "update", "patch", "delete"):
        assert not can("view", verb, rfj) and not can("view", verb, rrc), f"view may {verb}"
    assert can("admin", "delete", rrc) and can("admin", "create", rfj)


def readme_crd_upgrade_command() -> list[list[str]]:
    """The README's `helm show crds ... | kubectl apply ...` line, as the argv of each side."""
    readme = (REPO_ROOT / "README.md").read_text()
    (line,) = [ln for ln in readme.splitlines() if ln.startswith("helm show crds charts/")]
    return [shlex.split(side) for side in line.split("|")]


def test_the_readme_crd_upgrade_command_changes_crds_that_helm_installed(
    cluster: Cluster, helm_bin: Path
) -> None:
    """`helm upgrade` never touches crds/, so the README gives a command to run first. Its helm half
    runs as written; a new short name stands in for a CRD change the next chart version brings.
    Helm created the CRDs and owns their fields: the same apply without --force-conflicts is
    refused, which is why the README's command carries it."""
    helm_argv, kubectl_argv = readme_crd_upgrade_command()
    assert helm_argv[:3] == ["helm", "show", "crds"] and kubectl_argv[:2] == ["kubectl", "apply"]
    shown = run_helm(helm_bin, *(str(REPO_ROOT / a) if a.startswith("charts/") else a for a in helm_argv[1:]))
    assert shown.returncode == 0, shown.stderr
    crds = [doc for doc in yaml.safe_load_all(shown.stdout) if doc]
    names = {crd["metadata"]["name"] for crd in crds}
    assert {"ragfinetunejobs.rag.finetune.dev", "kopfpeerings.kopf.dev"} <= names
    (rrc,) = [crd for crd in crds if crd["metadata"]["name"] == "ragretrievalclusters.rag.finetune.dev"]
    rrc["spec"]["names"]["shortNames"] = [*rrc["spec"]["names"]["shortNames"], "rrcnext"]
    changed = yaml.safe_dump_all(crds)

    def apply(argv: list[str]) -> subprocess.CompletedProcess[str]:
        cmd = [str(cluster.kubectl), f"--kubeconfig={cluster.plane.kubeconfig}", *argv[1:]]
        return subprocess.run(cmd, input=changed, capture_output=True, text=True, timeout=60, check=False)

    refused = apply([a for a in kubectl_argv if a != "--force-conflicts"])
    assert refused.returncode != 0 and 'with "helm"' in refused.stderr, refused.stderr
    applied = apply(kubectl_argv)
    assert applied.returncode == 0, applied.stderr
    short = cluster.run(
        "get", "crd", "ragretrievalclusters.rag.finetune.dev", "-o", "jsonpath={.spec.names.shortNames}"
    ).stdout
    assert "rrcnext" in json.loads(short)
