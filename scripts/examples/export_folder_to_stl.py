#!/usr/bin/env python
"""Batch-export a folder of photos to printable STL solids (80 mm wide, 3 mm back plate).

Usage: python scripts/examples/export_folder_to_stl.py PHOTO_DIR OUT_DIR
"""

import sys
from pathlib import Path

from face3d_mesh.config import ReconstructionConfig
from face3d_mesh.frontends.batch import find_inputs, reconstruct_batch, write_summary


def main(photo_dir: str, out_dir: str) -> int:
    items = reconstruct_batch(
        find_inputs(photo_dir),
        out_dir,
        fmt="stl",
        solid=True,
        width_mm=80.0,
        base_mm=3.0,
        config=ReconstructionConfig(depth="auto"),
    )
    write_summary(items, out_dir)
    for item in items:
        outputs = ", ".join(str(Path(out_dir) / name) for name in item.outputs)
        print(f"{item.status:8} {item.file} {item.error or outputs}")
    return 0 if all(item.status != "failed" for item in items) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
