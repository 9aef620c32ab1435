"""String and number types with the Kubernetes rule of the field they land in.

Each type checks in pydantic (a message naming the rule and a valid example) and carries the
same rule into the generated CRD schema (pattern, maxLength, maximum), so `kubectl apply`
refuses what KubeRay could never turn into a pod. Patterns are RE2-compatible (the API server
evaluates them) and are matched whole in Python (`re.fullmatch`: `$` would accept a trailing
newline).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, GetJsonSchemaHandler, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = rf"^{_LABEL}$"
DNS1123_SUBDOMAIN = rf"^{_LABEL}(\.{_LABEL})*$"
DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
#: A label key / extended resource name: an optional DNS subdomain prefix, "/", a name.
QUALIFIED_NAME = rf"^({_LABEL}(\.{_LABEL})*/)?{_NAME}$"
#: An extended resource (what a device plugin advertises) always has a domain prefix.
EXTENDED_RESOURCE = rf"^{_LABEL}(\.{_LABEL})+/{_NAME}$"
LABEL_VALUE = rf"^({_NAME})?$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
ENV_VAR_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: An image reference: [registry[:port]/]path[:tag][@digest] (the distribution grammar, simplified).
_COMPONENT = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*"
_DOMAIN = r"[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*(:[0-9]+)?"
IMAGE_REFERENCE = (
    rf"^({_DOMAIN}/)?{_COMPONENT}(/{_COMPONENT})*(:[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(@[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
#: An absolute path that is not the root and has no ':' (the API server refuses those).
MOUNT_PATH = r"^/[^:]*[^/:]$"
RAY_VERSION = r"^[0-9]+\.[0-9]+\.[0-9]+$"


def _rule(pattern: str, max_length: int, what: str, example: str):
    """An AfterValidator enforcing `pattern` and `max_length`, with a message a user can act on."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if len(value) > max_length or not compiled.fullmatch(value) or "\n" in value:
            raise ValueError(f"{value!r} is not {what} (at most {max_length} characters), e.g. {example!r}")
        return value

    return check


def k8s_string(pattern: str, max_length: int, what: str, example: str):
    """An annotated str type: checked by pydantic with a clear message, and by the API server."""
    return Annotated[
        str,
        AfterValidator(_rule(pattern, max_length, what, example)),
        WithJsonSchema({"type": "string", "pattern": pattern, "maxLength": max_length}),
    ]


DnsLabel = k8s_string(DNS1123_LABEL, 63, "a DNS-1123 label (lower case letters, digits and '-')", "team-a")
DnsSubdomain = k8s_string(
    DNS1123_SUBDOMAIN, 253, "a DNS-1123 subdomain (lower case letters, digits, '-' and '.')", "hf-token"
)
Dns1035Label = k8s_string(DNS1035_LABEL, 63, "a DNS-1035 label (starts with a letter)", "wiki-dpr")
QualifiedName = k8s_string(
    QUALIFIED_NAME,
    316,
    "a qualified name ([prefix/]name, e.g. a label key)",
    "node.kubernetes.io/instance-type",
)
ExtendedResourceName = k8s_string(
    EXTENDED_RESOURCE, 316, "an extended resource name (domain/name)", "nvidia.com/gpu"
)
LabelValue = k8s_string(LABEL_VALUE, 63, "a label value (letters, digits, '-', '_', '.')", "gpu-a100")
SecretKey = k8s_string(SECRET_KEY, 253, "a Secret key (letters, digits, '-', '_' and '.')", "token")
EnvVarName = k8s_string(ENV_VAR_NAME, 253, "an environment variable name", "HF_TOKEN")
ImageReference = k8s_string(
    IMAGE_REFERENCE,
    1024,
    "an image reference ([registry/]path[:tag][@digest])",
    "ghcr.io/org/rag-job:0.1.0-cpu",
)
MountPath = k8s_string(MOUNT_PATH, 1024, "an absolute mount path other than / without ':'", "/data")
RayVersion = k8s_string(RAY_VERSION, 32, "a Ray version (MAJOR.MINOR.PATCH)", "2.60.0")

#: Replicas, counts, seconds: Kubernetes stores them as int32.
Int32 = Annotated[int, Field(le=INT32_MAX)]


class _Int64Format:
    """The JSON schema of an int64: `format: int64` instead of the int64 maximum, other bounds kept."""

    def __get_pydantic_json_schema__(
        self, core_schema: Any, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = dict(handler(core_schema))
        if schema.get("maximum") == INT64_MAX:
            del schema["maximum"]
        return {**schema, "format": "int64"}


#: Seconds, user and group ids: Kubernetes stores them as int64. The upper bound is checked by
#: pydantic but not written into the CRD: the API server reads `maximum: 9223372036854775807` as
#: a float, overflows it to the smallest int64 and then refuses every value; `format: int64` it
#: checks itself.
Int64 = Annotated[int, Field(le=INT64_MAX), _Int64Format()]
