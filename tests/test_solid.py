import numpy as np
import pytest
import pyvista as pv
import trimesh
from mesh_metrics import boundary_loops
from synth import (
    CENTRE,
    MASK_R,
    MM_PER_PX,
    SPHERE_R,
    sphere_cap,
    sphere_cap_volume,
    sphere_depth,
)

from face3d_mesh.errors import UsageError
from face3d_mesh.solid import make_solid
from face3d_mesh.surface import depth_to_mesh


def _check_solid(solid):
    faces = solid.regular_faces
    pts = np.asarray(solid.points, dtype=np.float64)
    tm = trimesh.Trimesh(pts, faces, process=False)
    assert tm.is_watertight and tm.is_winding_consistent and tm.is_volume
    assert tm.volume > 0
    # every undirected edge in exactly two triangles
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert (counts == 2).all()
    area = (
        np.linalg.norm(
            np.cross(pts[faces[:, 1]] - pts[faces[:, 0]], pts[faces[:, 2]] - pts[faces[:, 0]]),
            axis=1,
        )
        / 2
    )
    assert area.min() > 1e-6
    # trimesh's own processing (vertex merge) agrees
    assert trimesh.Trimesh(pts, faces).is_watertight
    return tm


@pytest.fixture(scope="module")
def sphere_surface():
    depth, mask, r = sphere_cap()
    return depth_to_mesh(depth, mm_per_px=MM_PER_PX, origin_px=CENTRE, grid_step_px=1.0)


def test_sphere_solid_volume_and_base(sphere_surface):
    solid = make_solid(sphere_surface, base_mm=3.0)
    tm = _check_solid(solid)
    front_zmin = sphere_surface.points[:, 2].min()
    z = solid.points[:, 2]
    back = np.isclose(z, z.min())
    assert np.isclose(z.min(), front_zmin - 3.0, atol=1e-5)
    assert back.sum() == sphere_surface.n_points  # flat plate: a copy of the grid
    # The footprint is the smooth outline, about half a pixel inside the disc's edge: the
    # solid is the cap over the disc of the same area, on a plate 3 mm behind the rim's
    # deepest vertex.
    rim = np.asarray(sphere_surface.points, dtype=np.float64)[
        boundary_loops(sphere_surface.regular_faces)[0], :2
    ]
    area = 0.5 * abs(
        np.dot(rim[:, 0], np.roll(rim[:, 1], -1)) - np.dot(np.roll(rim[:, 0], -1), rim[:, 1])
    )
    r_eq = np.sqrt(area / np.pi)
    assert MASK_R - 2 * MM_PER_PX < r_eq < MASK_R
    expected = sphere_cap_volume(r_eq, SPHERE_R, -z.min() - sphere_depth(r_eq))
    assert abs(tm.volume - expected) / expected < 0.002
    # outward normals: the plate faces -z
    n = solid.compute_normals(
        cell_normals=True, point_normals=False, auto_orient_normals=False, consistent_normals=False
    ).cell_data["Normals"]
    centres = solid.cell_centers().points
    assert (n[np.isclose(centres[:, 2], z.min()), 2] < -0.999).all()


def test_width_scaling_is_exact(sphere_surface):
    solid = make_solid(sphere_surface, base_mm=2.0, width_mm=80.0)
    _check_solid(solid)
    assert np.ptp(solid.points[:, 0]) == pytest.approx(80.0, abs=1e-9)
    scale = solid.field_data["scale"][0]
    assert scale == pytest.approx(80.0 / np.ptp(sphere_surface.points[:, 0]))
    relief = scale * sphere_surface.points[:, 2].min()
    assert solid.points[:, 2].min() == pytest.approx(relief - 2.0, abs=1e-4)


def test_input_untouched_and_no_point_data(sphere_surface):
    before = sphere_surface.points.copy()
    solid = make_solid(sphere_surface, width_mm=10)
    np.testing.assert_array_equal(sphere_surface.points, before)
    assert len(solid.point_data.keys()) == 0


def _awkward_surface(step):
    size = 140
    v, u = np.mgrid[0:size, 0:size].astype(float)
    mask = np.hypot(u - 50, v - 70) < 35  # disc
    mask |= np.hypot(u - 110, v - 70) < 20  # second disc...
    mask &= ~((u > 84) & (u < 92) & (np.abs(v - 70) > 1.5))  # ...joined by a 3 px neck
    mask &= ~(np.hypot(u - 45, v - 65) < 8)  # a hole
    mask &= ~((u > 30) & (u < 70) & (v > 90))  # concave bite
    mask[20:25, 100:105] = True  # separate island (dropped: not the largest piece)
    depth = np.where(mask, 20 + 0.002 * (u - 50) ** 2 + 0.003 * (v - 70) ** 2, np.nan)
    return depth_to_mesh(
        depth.astype(np.float32), mm_per_px=0.4, origin_px=(50, 70), grid_step_px=step
    )


@pytest.mark.parametrize("step", [1.0, 0.5, 2.0])
def test_awkward_mask_solid(step):
    surf = _awkward_surface(step)
    solid = make_solid(surf, base_mm=1.5)
    tm = _check_solid(solid)
    # volume = integral of (z - z_back) over the front triangles' footprint
    p = np.asarray(surf.points, dtype=np.float64)
    f = surf.regular_faces
    a = p[f]
    area = 0.5 * np.abs(np.cross(a[:, 1, :2] - a[:, 0, :2], a[:, 2, :2] - a[:, 0, :2]))
    zb = solid.points[:, 2].min()
    expected = np.sum(area * (a[:, :, 2].mean(axis=1) - zb))
    assert tm.volume == pytest.approx(expected, rel=1e-6)


def test_bad_inputs(sphere_surface):
    with pytest.raises(UsageError):
        make_solid(sphere_surface, base_mm=0)
    with pytest.raises(UsageError):
        make_solid(sphere_surface, width_mm=-5)
    with pytest.raises(UsageError, match="edge_mm"):
        make_solid(sphere_surface, edge_mm=-1)
    with pytest.raises(UsageError, match="too large"):
        make_solid(sphere_surface, edge_mm=30)  # the disc is 99 mm across
    with pytest.raises(UsageError):
        make_solid("not a mesh")
    with pytest.raises(UsageError):
        make_solid(pv.PolyData())
    with pytest.raises(UsageError, match="height field"):
        flipped = pv.PolyData.from_regular_faces(
            sphere_surface.points, sphere_surface.regular_faces[:, ::-1]
        )
        make_solid(flipped)
    with pytest.raises(UsageError):
        make_solid(pv.Sphere())  # closed and not a height field
