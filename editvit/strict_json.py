"""JSON that strict readers accept: NaN and infinities, which Python's json writes as bare `NaN` / `Infinity`, are
written as null. Every JSON file and line editvit writes goes through `to_json`."""
import json
import math
from typing import Any, Mapping


def json_safe(data: Any) -> Any:
    """data with every NaN or infinite float replaced by None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, Mapping):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return data


def to_json(data: Any, indent: Any = 2) -> str:
    """Strict JSON text of data (NaN and infinities as null); indent=None for one line."""
    return json.dumps(json_safe(data), indent=indent, allow_nan=False)
