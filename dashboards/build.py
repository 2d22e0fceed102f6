"""Write every dashboard's JSON: ``python -m dashboards.build`` (``--check`` only compares).

The JSON goes to ``dashboards/json/`` (the compose stack mounts it) and, the
same bytes, to ``helm/shiftwatch/dashboards/`` (the chart's ConfigMaps).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import DASHBOARDS

__all__ = ["OUTPUTS", "main", "render"]

ROOT = Path(__file__).resolve().parents[1]
#: Where the JSON is written, each a copy of the others.
OUTPUTS = (ROOT / "dashboards" / "json", ROOT / "helm" / "shiftwatch" / "dashboards")


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        f"{stem}.json": json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True)
        + "\n"
        for stem, build in DASHBOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a written file differs")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        for folder in OUTPUTS:
            path = folder / name
            if args.check:
                if not path.is_file() or path.read_text(encoding="utf-8") != text:
                    stale.append(path)
            else:
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{path} is not current: run python -m dashboards.build", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
