"""Merges JSON merge templates for `chalice package --merge-template`, which
takes one: `python -m tools.merge_template BASE EXTRA... > merged.json`.

Objects merge key by key, recursively; any other value of a later file
replaces the earlier one (as Chalice merges a template into its own)."""

import json
import sys
from pathlib import Path
from typing import Any


def merge(base: Any, extra: Any) -> Any:
    if isinstance(base, dict) and isinstance(extra, dict):
        merged = dict(base)
        for key, value in extra.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    return extra


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    result: Any = {}
    for path in paths:
        result = merge(result, json.loads(Path(path).read_text(encoding="utf-8")))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
