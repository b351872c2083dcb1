#!/usr/bin/env python
"""Measure distances between face landmarks in millimetres.

Prints a few classic anthropometric distances (3D, in the mesh frame) with the scale's
uncertainty. Usage: python scripts/examples/measure_landmarks.py PHOTO
"""

import sys

import numpy as np

import face3d_mesh

# Landmark pairs (MediaPipe face-mesh indices).
DISTANCES = {
    "outer eye corners (biocular width)": (33, 263),
    "inner eye corners (intercanthal width)": (133, 362),
    "nose tip to chin": (1, 152),
    "mouth width": (61, 291),
    "face width at the cheekbones": (234, 454),
}


def main(photo: str) -> int:
    rec = face3d_mesh.reconstruct(photo, depth="landmarks")
    points = rec.landmarks_mesh  # (478, 3) mm, x right, y up, z toward the camera
    print(f"{photo}: scale {rec.scale.describe()}")
    for name, (a, b) in DISTANCES.items():
        d = float(np.linalg.norm(points[a] - points[b]))
        print(f"  {name:42} {d:6.1f} mm ± {d * rec.scale.uncertainty:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
