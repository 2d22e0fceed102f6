"""Write ``calibration_table.json``: the multi-chart constants for the default shift grid.

Run ``python -m detectors.calibration_table`` after changing the default
shifts or the simulation in :mod:`detectors.calibration`; the simulations are
seeded, so the file is reproducible. Two processes share the grid.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from detectors import calibration


def _point(args: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    family, direction, g, rate = args
    return f"{family} {direction} {g}", calibration.table_point(family, direction, rate)


def main() -> int:
    points = calibration.table_points()
    out: dict[str, dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=2) as pool:
        for i, (key, value) in enumerate(pool.map(_point, points), 1):
            out[key] = value
            print(f"{i}/{len(points)} {key}: C={value['c']:.4g}", file=sys.stderr)
    doc = {
        "shifts": list(calibration.DEFAULT_SHIFTS),
        "grid_per_decade": calibration._GRID_PER_DECADE,
        "h_sim": calibration._H_SIM,
        "points": out,
    }
    path = Path(calibration.__file__).with_name("calibration_table.json")
    path.write_text(json.dumps(doc, indent=0, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
