"""Kubernetes API helpers both controllers use, over the clients kopf's `memo` holds
(`memo.custom`: CustomObjectsApi, `memo.core`: CoreV1Api; tests put in-memory fakes there)."""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable
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
NETWORKPOLICY: Resource = ("networking.k8s.io", "v1", "networkpolicies")
#: API answers that retrying the same create cannot change: bad request, forbidden (RBAC, quota,
#: admission policy), missing API, invalid object.
_REJECTED = frozenset({400, 403, 404, 422})


class CreateRejected(RuntimeError):
    """The API server refused to create a child object; the message says which and why."""


def _reason(err: ApiException) -> str:
    """The API server's own message (the JSON Status body), else the HTTP reason."""
    try:
        return json.loads(err.body or "{}").get("message") or str(err.reason)
    except (ValueError, AttributeError):
        return str(err.reason)


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


def list_pods(memo: Any, namespace: str, label_selector: str) -> list[dict[str, Any]]:
    """The pods matching `label_selector`, as plain dicts (what kube-scheduler wrote on them)."""
    listed = memo.core.list_namespaced_pod(namespace, label_selector=label_selector)
    return memo.core.api_client.sanitize_for_serialization(listed).get("items") or []


def create_object(memo: Any, resource: Resource, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Create it; if an earlier run of the handler won the race (409), return that one.

    CreateRejected when the API server refuses it for a reason a retry cannot fix.
    """
    group, version, plural = resource
    try:
        return memo.custom.create_namespaced_custom_object(group, version, namespace, plural, obj)
    except ApiException as err:
        if err.status in _REJECTED:
            kind, name = obj.get("kind", plural), obj["metadata"]["name"]
            raise CreateRejected(
                f"the API server refused to create {kind} {name} ({err.status}): {_reason(err)}"
            ) from err
        if err.status != 409:
            raise
        found = get_object(memo, resource, namespace, obj["metadata"]["name"])
        if found is None:
            raise kopf.TemporaryError(f"{plural} conflict but not found; retrying", delay=5) from err
        return found


def ensure_owned(memo: Any, resource: Resource, owner: Any, obj: dict[str, Any] | None) -> None:
    """Create `obj` owned by `owner` unless it exists (or is None); CreateRejected if refused, or
    if an object of that name exists that `owner` does not own (its rules are not ours)."""
    if obj is None:
        return
    namespace, name = owner["metadata"]["namespace"], obj["metadata"]["name"]
    found = get_object(memo, resource, namespace, name)
    if found is None:
        kopf.append_owner_reference(obj, owner=owner)
        create_object(memo, resource, namespace, obj)
    elif not owned_by(found, owner["metadata"].get("uid"), owner.get("kind", "")):
        kind = obj.get("kind", resource[2])
        raise CreateRejected(
            f"{kind} {namespace}/{name} already exists and is not owned by {owner.get('kind')} "
            f"{owner['metadata']['name']}: it was not created for it, so its rules are not the ones "
            f"this resource needs; delete or rename that {kind}"
        )


def patch_status(memo: Any, resource: Resource, namespace: str, name: str, body: dict[str, Any]) -> None:
    """A merge patch of the status subresource (`body` holds `status`, maybe a resourceVersion).

    The client sends a dict body to a custom object's PATCH as a JSON merge patch; the
    `_content_type` override some client versions accept is refused by others (35.x).
    """
    group, version, plural = resource
    memo.custom.patch_namespaced_custom_object_status(group, version, namespace, plural, name, body)


def update_status(
    memo: Any,
    resource: Resource,
    namespace: str,
    name: str,
    compute: Callable[[dict[str, Any]], dict[str, Any] | None],
    attempts: int = 5,
) -> dict[str, Any] | None:
    """Read the object, compute a status patch from what it holds, and write it only if nobody
    wrote in between (resourceVersion); on a conflict read again. Handlers that write a whole
    `conditions` list from what they read use this, so none overwrites a newer one with a stale
    copy. Returns the object it computed from (None when it is gone or compute had nothing to do).
    """
    for _ in range(attempts):
        obj = get_object(memo, resource, namespace, name)
        if obj is None:
            return None
        update = compute(obj)
        if not update:
            return obj
        body = {"metadata": {"resourceVersion": obj["metadata"].get("resourceVersion")}, "status": update}
        try:
            patch_status(memo, resource, namespace, name, body)
            return obj
        except ApiException as err:
            if err.status != 409:
                raise
    raise kopf.TemporaryError(
        f"{name}: status changed {attempts} times while being written; retrying", delay=1
    )


def owned_by(obj: dict[str, Any], uid: str | None, kind: str) -> bool:
    """True if one of obj's ownerReferences is the `kind` object with this uid."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("kind") == kind for ref in refs)


def post_event(memo: Any, obj: Any, event: Event, stamp: str) -> None:
    """A core/v1 Event on one of our resources; failing to post never fails the handler."""

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
        # A plain dict goes over the wire as written (camelCase), with every client version.
        memo.core.create_namespaced_event(meta["namespace"], body)
    except ApiException as err:
        logging.getLogger(__name__).warning("could not post event %s: %s", event.reason, err.reason)
