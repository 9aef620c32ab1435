"""Kubernetes API helpers both controllers use, over the clients kopf's `memo` holds
(`memo.custom`: CustomObjectsApi, `memo.core`: CoreV1Api; tests put in-memory fakes there)."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from . import names
from .conditions import Event

Resource = tuple[str, str, str]  # (group, version, plural)
RFJ: Resource = (names.GROUP, names.VERSION, names.PLURAL)
RRC: Resource = (names.GROUP, names.VERSION, names.RRC_PLURAL)
RAYJOB: Resource = (names.RAY_GROUP, names.RAY_VERSION, names.RAYJOB_PLURAL)
RAYCLUSTER: Resource = (names.RAY_GROUP, names.RAY_VERSION, names.RAYCLUSTER_PLURAL)
MERGE_PATCH = "application/merge-patch+json"


def now() -> str:
    """RFC 3339 UTC timestamp, second precision (what Kubernetes writes)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_object(memo: Any, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
    """The object, or None when there is none."""
    group, version, plural = resource
    try:
        return memo.custom.get_namespaced_custom_object(group, version, namespace, plural, name)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def list_objects(memo: Any, resource: Resource, namespace: str) -> list[dict[str, Any]]:
    """Every object of the resource in the namespace."""
    group, version, plural = resource
    return memo.custom.list_namespaced_custom_object(group, version, namespace, plural).get("items") or []


def create_object(memo: Any, resource: Resource, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Create it; if an earlier run of the handler won the race (409), return that one."""
    group, version, plural = resource
    try:
        return memo.custom.create_namespaced_custom_object(group, version, namespace, plural, obj)
    except ApiException as err:
        if err.status != 409:
            raise
        found = get_object(memo, resource, namespace, obj["metadata"]["name"])
        if found is None:
            raise kopf.TemporaryError(f"{plural} conflict but not found; retrying", delay=5) from err
        return found


def patch_status(memo: Any, resource: Resource, namespace: str, name: str, body: dict[str, Any]) -> None:
    """A merge patch of the status subresource (`body` holds `status`, maybe a resourceVersion)."""
    group, version, plural = resource
    memo.custom.patch_namespaced_custom_object_status(
        group, version, namespace, plural, name, body, _content_type=MERGE_PATCH
    )


def owned_by(obj: dict[str, Any], uid: str | None, kind: str) -> bool:
    """True if one of obj's ownerReferences is the `kind` object with this uid."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("kind") == kind for ref in refs)


def post_event(memo: Any, obj: Any, event: Event, stamp: str) -> None:
    """A core/v1 Event on one of our resources; failing to post never fails the handler."""
    from kubernetes.client import CoreV1Event

    meta = obj["metadata"]
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": names.API_VERSION,
            "kind": obj.get("kind") or names.KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:1024],
        "source": {"component": names.OPERATOR_NAME},
        "reportingComponent": names.OPERATOR_NAME,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        memo.core.create_namespaced_event(meta["namespace"], CoreV1Event.from_dict(body))
    except ApiException as err:
        logging.getLogger(__name__).warning("could not post event %s: %s", event.reason, err.reason)
