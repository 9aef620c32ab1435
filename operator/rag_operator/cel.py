"""CEL rules (x-kubernetes-validations) that let the API server refuse, at `kubectl apply`, what the
operator would only report after the object exists.

Each rule is generated from the table or limit the operator itself checks with (names, the
fields a shared job must omit, the layout of the retrieval actors), so the two cannot drift:
whatever a rule refuses, the operator's plan refuses too. The operator keeps its own checks: a
cluster may run an older CRD, and these rules cover only what CEL can say cheaply.
"""

from __future__ import annotations

import json
from typing import Any

Rule = dict[str, str]

#: metadata.name: a DNS-1035 label (what the operator's check_name requires).
_DNS1035 = "^[a-z]([-a-z0-9]*[a-z0-9])?$"


def _quote(value: str) -> str:
    return json.dumps(value)  # a CEL string literal (the values here hold no escapes CEL reads otherwise)


def name_rule(limit: int, why: str) -> Rule:
    """Root rule: the object's name is a DNS-1035 label of at most `limit` characters."""
    return {
        "rule": f"size(self.metadata.name) <= {limit} && self.metadata.name.matches({_quote(_DNS1035)})",
        "message": f"metadata.name must be a DNS-1035 label of at most {limit} characters (lower case "
        f"letters, digits and '-', starting with a letter): {why} are named after it; choose a shorter name",
        "reason": "FieldValueInvalid",
    }


def _unchanged(path: str, field: str) -> str:
    """CEL: `path.field` is present in both or neither, and equal when present."""
    new, old = f"self.{path}", f"oldSelf.{path}"
    return (
        f"has({new}.{field}) == has({old}.{field}) && (!has({new}.{field}) || {new}.{field} == {old}.{field})"
    )


def immutable_once(
    started_by: str, spec_schema: dict[str, Any], mutable: dict[str, list[str]], kind: str, child: str
) -> list[Rule]:
    """Root transition rules: once `status.<started_by>` is set (the child exists), every spec field
    but the `mutable` ones keeps its value; one rule per field, so the message names it.

    `mutable` maps a top-level field to those of its sub-fields that may change: its other
    sub-fields get a rule each; a top-level field absent from it may not change at all.
    """
    allowed = ", ".join(f"spec.{top}.{sub}" for top, subs in mutable.items() for sub in subs)
    allowed = f"only {allowed} can change" if allowed else "no spec field can change"
    guard = f"!has(oldSelf.status) || !has(oldSelf.status.{started_by})"

    def rule(condition: str, path: str) -> Rule:
        return {
            "rule": f"{guard} || {condition}",
            "message": f"spec.{path} cannot change once the {child} exists (status.{started_by} is "
            f"set): delete the {kind} and create it again with the new value ({allowed})",
            "fieldPath": f".spec.{path}",
            "reason": "FieldValueForbidden",
        }

    properties = spec_schema["properties"]
    whole = [rule(f"({_unchanged('spec', field)})", field) for field in properties if field not in mutable]
    # A partly mutable field added or removed whole has nothing to compare its sub-fields with:
    # only what both versions hold is compared.
    parts = [
        rule(
            f"!(has(self.spec.{top}) && has(oldSelf.spec.{top})) || ({_unchanged(f'spec.{top}', sub)})",
            f"{top}.{sub}",
        )
        for top, changeable in mutable.items()
        for sub in properties[top]["properties"]
        if sub not in changeable
    ]
    return whole + parts


def one_gpu_per_worker_rule(default_gpus: int) -> Rule:
    """Trainer pods: workersPerPod, when given with GPUs, equals gpusPerPod (one GPU per worker)."""
    gpus = f"(has(self.gpusPerPod) ? self.gpusPerPod : {default_gpus})"
    return {
        "rule": f"!has(self.workersPerPod) || {gpus} == 0 || self.workersPerPod == {gpus}",
        "message": "workersPerPod must equal gpusPerPod: each Ray Train worker uses one GPU; omit workersPerPod",
        "fieldPath": ".workersPerPod",
        "reason": "FieldValueInvalid",
    }


def actors_per_shard_rule(defaults: dict[str, int]) -> Rule:
    """Retrieval pods: replicas x actorsPerPod is a multiple of shards (equal actors per shard)."""

    def value(field: str) -> str:
        return f"(has(self.{field}) ? self.{field} : {defaults[field]})"

    return {
        "rule": f"{value('replicas')} * {value('actorsPerPod')} % {value('shards')} == 0",
        "message": "replicas x actorsPerPod must be a multiple of shards so every shard gets the same "
        "number of actors: change actorsPerPod or replicas",
        "fieldPath": ".actorsPerPod",
        "reason": "FieldValueInvalid",
    }


def mount_not_at_storage_rule(group: str, default_mount: str) -> Rule:
    """Spec rule: no volumeMount of `group`'s pod override is at spec.storage.pvc's mountPath."""
    mounts = f"self.{group}.pod.volumeMounts"
    storage = f"(has(self.storage.pvc.mountPath) ? self.storage.pvc.mountPath : {_quote(default_mount)})"
    return {
        "rule": f"!has(self.storage.pvc) || !has(self.{group}) || !has(self.{group}.pod) || "
        f"!has({mounts}) || {mounts}.all(m, m.mountPath != {storage})",
        "message": f"spec.{group}.pod.volumeMounts: a mountPath is where spec.storage.pvc is mounted: "
        "choose another path",
        "fieldPath": f".{group}.pod.volumeMounts",
        "reason": "FieldValueInvalid",
    }


def omitted_with_ref(
    ref_field: str, top_level: dict[str, str], nested: dict[str, dict[str, str]]
) -> list[Rule]:
    """Spec rules: with `ref_field` set, each listed field must be omitted (its message says why)."""
    rules = []
    for field, why in top_level.items():
        rules.append(
            {
                "rule": f"!has(self.{ref_field}) || !has(self.{field})",
                "message": f"spec.{field} must be omitted with spec.{ref_field}: {why}",
                "fieldPath": f".{field}",
                "reason": "FieldValueForbidden",
            }
        )
    for parent, fields in nested.items():
        for field, why in fields.items():
            rules.append(
                {
                    "rule": f"!has(self.{ref_field}) || !has(self.{parent}) || !has(self.{parent}.{field})",
                    "message": f"spec.{parent}.{field} must be omitted with spec.{ref_field}: {why}",
                    "fieldPath": f".{parent}.{field}",
                    "reason": "FieldValueForbidden",
                }
            )
    return rules


def refused_with_ref(ref_field: str, conditions: list[tuple[str, str, str]]) -> list[Rule]:
    """Spec rules: with `ref_field` set, no (field path, CEL condition over self, message) holds."""
    return [
        {
            "rule": f"!has(self.{ref_field}) || !({condition})",
            "message": message,
            "fieldPath": f".{path}",
            "reason": "FieldValueForbidden",
        }
        for path, condition, message in conditions
    ]


def add_rules(node: dict[str, Any], rules: list[Rule]) -> None:
    """Append rules to a schema node's x-kubernetes-validations."""
    if rules:
        node.setdefault("x-kubernetes-validations", []).extend(rules)
