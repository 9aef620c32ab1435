"""Kubernetes resource quantities ("500m", "64Gi", 4) as numbers, and back to Gi strings."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_SUFFIXES = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
#: The Kubernetes quantity grammar (without exponent forms), used as the CRD pattern too.
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
_QUANTITY = re.compile(QUANTITY_PATTERN)
GI = 2**30


def parse_quantity(value: str | int | float) -> Decimal:
    """A quantity as a Decimal in base units (cores, bytes); ValueError names the bad text."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.fullmatch(value)  # no surrounding blanks: the API server refuses them too
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (examples: 4, 500m, 16Gi)")
    suffix = match.group(2) or ""
    number = value[: len(value) - len(suffix)]
    try:
        return Decimal(number) * _SUFFIXES[suffix]
    except InvalidOperation as err:  # pragma: no cover - the pattern already excludes this
        raise ValueError(f"{value!r} is not a Kubernetes quantity") from err


def gi_ceil(num_bytes: float | Decimal) -> str:
    """Bytes rounded up to whole GiB, as a quantity string ("7Gi")."""
    return f"{max(1, math.ceil(Decimal(num_bytes) / GI))}Gi"


def quantity_str(value: str | int | float) -> str:
    """A quantity as Kubernetes writes it in a pod spec (always a string)."""
    return value if isinstance(value, str) else str(value)
