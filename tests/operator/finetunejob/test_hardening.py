"""Hardened by default: what the Ray pods may do and reach, where Secrets go, and the controller's
answers to a cluster that says no (handlers against the in-memory API of testlib; the same
paths run on the real API server in test_on_apiserver.py)."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from rag_operator.common import names
from rag_operator.common.sizing import no_kb_metadata
from rag_operator.finetunejob import render
from rag_operator.retrievalcluster import controller as rrc_controller
from rag_operator.retrievalcluster.status import unfinished_referrers
from tests.operator.testlib import FakeMemo, load_example, merge_patch, pod_templates

from .test_controller import NS, reconcile, stored, submit


def rendered(**spec_changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(load_example("cpu"))
    doc["spec"].update(spec_changes)
    return render.rayjob_for(doc, no_kb_metadata)[0]


def test_every_ray_pod_and_the_submitter_run_hardened_without_a_token() -> None:
    templates = pod_templates(rendered())
    assert set(templates) == {"head", "trainer", "retrieval", "submitter"}
    for group, template in templates.items():
        pod = template["spec"]
        assert pod["automountServiceAccountToken"] is False, group
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {
                "drop": ["ALL"]
            }
        assert template["metadata"]["labels"][names.LABEL_JOB] == "rag-tiny-cpu", group


def test_hardening_and_the_token_are_relaxed_only_when_asked() -> None:
    templates = pod_templates(rendered(security={"hardened": False, "automountServiceAccountToken": True}))
    for template in templates.values():
        assert "securityContext" not in template["spec"]
        assert template["spec"]["automountServiceAccountToken"] is True
        assert all("securityContext" not in c for c in template["spec"]["containers"])


def test_a_secret_reaches_only_the_groups_it_is_given_to() -> None:
    secrets = [
        {"name": "HF_TOKEN", "secretName": "hf", "key": "token"},
        {"name": "AWS_SECRET_ACCESS_KEY", "secretName": "s3", "key": "secret", "pods": ["retrieval"]},
    ]
    templates = pod_templates(rendered(secrets=secrets))
    seen = {
        group: {e["name"] for e in t["spec"]["containers"][0].get("env", []) if "valueFrom" in e}
        for group, t in templates.items()
    }
    assert seen == {
        "head": {"HF_TOKEN"},
        "trainer": {"HF_TOKEN"},
        "retrieval": {"AWS_SECRET_ACCESS_KEY"},
        "submitter": set(),
    }


def test_the_network_policy_admits_the_jobs_pods_and_only_the_operators_to_the_dashboard_and_metrics() -> (
    None
):
    doc = load_example("cpu")
    spec = render.parse_spec(doc["spec"])
    policy = render.render_job_network_policy("rag-tiny-cpu", "ns", spec)
    own = {"matchLabels": {names.LABEL_JOB: "rag-tiny-cpu"}}
    assert policy["spec"]["podSelector"] == own and policy["spec"]["policyTypes"] == ["Ingress"]
    everything, kuberay, ours = policy["spec"]["ingress"]
    assert everything == {"from": [{"podSelector": own}]}
    # KubeRay submits and polls through the dashboard; our operator also reads the training
    # progress on Ray's metrics port.
    assert kuberay["ports"] == [{"protocol": "TCP", "port": 8265}]
    assert [p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in kuberay["from"]] == [
        "kuberay-operator"
    ]
    assert ours["ports"] == [{"protocol": "TCP", "port": 8265}, {"protocol": "TCP", "port": 8080}]
    assert [p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in ours["from"]] == [
        "rag-finetune-operator"
    ]
    extra = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    relaxed = render.parse_spec({**doc["spec"], "security": {"dashboardPeers": [extra]}})
    peers = render.render_job_network_policy("x", None, relaxed)["spec"]["ingress"][3]
    # A listed peer (a monitoring namespace) reaches the dashboard and Ray's metrics port, no more.
    assert peers == {
        "from": [extra],
        "ports": [{"protocol": "TCP", "port": 8265}, {"protocol": "TCP", "port": 8080}],
    }
    off = render.parse_spec({**doc["spec"], "security": {"networkPolicy": False}})
    assert render.render_job_network_policy("x", None, off) is None


def test_a_create_the_api_server_refuses_fails_the_job_once_with_the_servers_message(
    memo: FakeMemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 422 on create (what a platform's admission webhook returns): Failed, a Warning event and a
    PermanentError, so kopf does not retry. (The in-memory API is told to refuse; the real API
    server refuses through an admission policy in test_on_apiserver.py.)"""
    create = memo.custom.create_namespaced_custom_object

    def refuse(group, version, namespace, plural, body):
        if plural == names.RAYJOB_PLURAL:
            raise ApiException(status=422, reason="Unprocessable Entity")
        return create(group, version, namespace, plural, body)

    monkeypatch.setattr(memo.custom, "create_namespaced_custom_object", refuse)
    body = submit(memo)
    with pytest.raises(kopf.PermanentError, match="refused to create RayJob rag-tiny-cpu"):
        reconcile(memo, body)
    job = stored(memo, body)
    assert (job["status"]["phase"], job["status"]["reason"]) == ("Failed", "CreateRejected")
    assert "CreateRejected" in memo.core.reasons()


def test_a_second_job_may_not_write_where_an_unfinished_one_writes(memo: FakeMemo) -> None:
    first = submit(memo)
    reconcile(memo, first)
    doc = load_example("cpu")
    doc["metadata"] |= {"name": "copycat", "namespace": NS}
    doc["spec"]["job"]["output_dir"] = stored(memo, first)["status"]["outputDir"]
    second = memo.custom.put(names.GROUP, names.PLURAL, doc)
    with pytest.raises(kopf.PermanentError, match=r"spec\.job\.output_dir"):
        reconcile(memo, second)
    assert "also used by RagFinetuneJob 'rag-tiny-cpu'" in stored(memo, second)["status"]["message"]


def test_two_jobs_with_the_same_job_name_get_their_own_paths(memo: FakeMemo) -> None:
    paths = []
    for name in ("sweep-a", "sweep-b"):
        doc = load_example("cpu")
        doc["metadata"] |= {"name": name, "namespace": NS}
        doc["spec"]["job"]["name"] = "same-run"
        body = memo.custom.put(names.GROUP, names.PLURAL, doc)
        reconcile(memo, body)
        status = stored(memo, body)["status"]
        paths.append((status["outputDir"], status["checkpointPath"]))
    assert paths == [
        ("/data/outputs/sweep-a", "/data/checkpoints/sweep-a"),
        ("/data/outputs/sweep-b", "/data/checkpoints/sweep-b"),
    ]


def test_a_job_still_waiting_for_a_cluster_does_not_hold_its_deletion() -> None:
    """The deadlock: a Pending job waits for a deleting cluster, the cluster waits for the job."""
    waiting = {
        "metadata": {"name": "waiting"},
        "spec": {"retrievalClusterRef": "kb"},
        "status": {"phase": "Pending"},
    }
    running = {
        "metadata": {"name": "running"},
        "spec": {"retrievalClusterRef": "kb"},
        "status": {"phase": "Running", "rayJobName": "running"},
    }
    assert unfinished_referrers([waiting, running], "kb") == ["running"]


def test_a_service_rayjob_the_cluster_does_not_own_is_a_name_conflict(memo: FakeMemo) -> None:
    import yaml

    from tests.operator.testlib import RRC_EXAMPLE

    rrc = memo.custom.put(names.GROUP, names.RRC_PLURAL, yaml.safe_load(RRC_EXAMPLE.read_text()))
    namespace = rrc["metadata"]["namespace"]
    stranger = {"metadata": {"name": "wiki-dpr-retrieval-service", "namespace": namespace}, "spec": {}}
    memo.custom.put(names.RAY_GROUP, names.RAYJOB_PLURAL, stranger)
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError, match="RayJob named 'wiki-dpr-retrieval-service' already exists"):
        rrc_controller.reconcile_cluster(body=rrc, memo=memo, patch=patch)
    assert not [c for c in memo.custom.calls if c[0] == "create"], "nothing is created next to a stranger"
    key = (names.GROUP, names.RRC_PLURAL, namespace, "wiki-dpr")
    memo.custom.objects[key] = merge_patch(memo.custom.objects[key], dict(patch))
    assert rrc_controller.refresh(memo, namespace, "wiki-dpr") is None, "its status must not be read as ours"


def test_a_network_policy_the_job_does_not_own_is_refused_not_adopted(memo: FakeMemo) -> None:
    """A NetworkPolicy of the job's policy name made by someone else would leave the dashboard
    guarded by rules that are not ours: the job fails saying so, and creates no RayJob."""
    body = submit(memo)
    from rag_operator.finetunejob.spec import parse_spec

    policy = render.render_job_network_policy(body["metadata"]["name"], NS, parse_spec(body["spec"]))
    assert policy is not None
    stranger = {"metadata": {"name": policy["metadata"]["name"], "namespace": NS}, "spec": {}}
    memo.custom.put("networking.k8s.io", "networkpolicies", stranger)
    with pytest.raises(kopf.PermanentError, match=f"NetworkPolicy {NS}/{policy['metadata']['name']} already"):
        reconcile(memo, body)
    job = stored(memo, body)
    assert (job["status"]["phase"], job["status"]["reason"]) == ("Failed", "CreateRejected")
    assert "is not owned by RagFinetuneJob" in job["status"]["message"]
    assert not [c for c in memo.custom.calls if c[0] == "create" and c[4] == names.RAYJOB_PLURAL]
