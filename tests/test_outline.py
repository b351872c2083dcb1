"""The surface's outline, rim and boundary band, and the solids made from it.

Figures (see mesh_metrics): outline turn (share of boundary vertices turning by more than
30 degrees in the image plane), rim roughness (p95 of the second difference of depth along
the boundary), lip (convex bends of the depth profile inward from the rim), sliver
(smallest triangle angle near the boundary).
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from mesh_metrics import (
    band_faces,
    boundary_loops,
    edge_lengths,
    inside_mask,
    min_angles_deg,
    rim_profile_second_difference_mm,
    rim_second_difference_mm,
    turn_angles_deg,
)
from synth import (
    MM_PER_PX,
    NOTCH_BOTTOM_MM,
    NOTCH_HALF_WIDTH_MM,
    OUTLINE_SHAPES,
    shape_sphere,
    sphere_depth,
)

from face3d_mesh.solid import make_solid
from face3d_mesh.surface import depth_to_mesh, rim_smoothing_mm

SIZE = 240
CENTRE = (SIZE / 2, SIZE / 2)


def _mesh(name, step):
    depth, mask = shape_sphere(name, SIZE)
    mesh = depth_to_mesh(depth, mm_per_px=MM_PER_PX, origin_px=CENTRE, grid_step_px=step)
    return mesh, mask, np.asarray(mesh.points, dtype=np.float64), mesh.regular_faces


def _notch_corners():
    top = np.sqrt(45.0**2 - NOTCH_HALF_WIDTH_MM**2)
    return np.array([[s * NOTCH_HALF_WIDTH_MM, y] for s in (-1, 1) for y in (top, NOTCH_BOTTOM_MM)])


@pytest.mark.parametrize("step", [0.8, 1.6, 3.0])
@pytest.mark.parametrize("name", sorted(OUTLINE_SHAPES))
def test_outline_is_smooth_and_band_has_no_slivers(name, step):
    mesh, mask, p, f = _mesh(name, step)
    step_mm = step * MM_PER_PX
    loops = boundary_loops(f)
    assert len(loops) == 1
    outline = loops[0]
    turn = turn_angles_deg(p, outline)
    if name == "notch":
        # the slot's four corners are real corners of the mask: only vertices next to them
        # may turn sharply
        corners = _notch_corners()
        dist = np.min(np.linalg.norm(p[outline, None, :2] - corners[None], axis=2), axis=1)
        assert (dist[turn > 30] < 3.0 + 2 * step_mm).all()
        assert np.mean(turn > 30) < 0.05
    else:
        assert np.mean(turn > 30) <= 0.02
        assert turn.max() < 15
    # boundary edges about one grid step long
    length = edge_lengths(p, outline) / step_mm
    assert 0.5 < length.min() and length.max() < 1.5
    assert abs(np.median(length) - 1) < 0.05
    # no slivers where the grid meets the outline
    near = band_faces(p, f, 2 * step_mm + MM_PER_PX)
    assert min_angles_deg(p, f)[near].min() >= 10
    # every vertex in a mask pixel
    assert inside_mask(p, mask, mm_per_px=MM_PER_PX, origin_px=CENTRE).all()


@pytest.mark.parametrize("name", sorted(OUTLINE_SHAPES))
def test_interior_stays_the_regular_grid(name):
    step = 1.6
    mesh, mask, p, f = _mesh(name, step)
    step_mm = step * MM_PER_PX
    far = ~band_faces(p, f, 2 * step_mm + 2 * MM_PER_PX)
    assert far.mean() > 0.8
    corners = p[f[far], :2]
    # on one lattice of spacing step (offset: the grid starts at the first mask pixel)
    lattice = corners / step_mm - np.round(corners / step_mm)
    offset = np.median(lattice.reshape(-1, 2), axis=0)
    assert np.abs(lattice - offset).max() < 1e-3
    sides = np.sort(np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2) / step_mm, axis=1)
    np.testing.assert_allclose(sides, np.broadcast_to([1, 1, np.sqrt(2)], sides.shape), atol=1e-3)


@pytest.mark.parametrize("name", sorted(OUTLINE_SHAPES))
def test_rim_depth_is_smooth_and_true(name):
    step = 1.6
    mesh, mask, p, f = _mesh(name, step)
    outline = boundary_loops(f)[0]
    assert np.percentile(rim_second_difference_mm(p, outline), 95) <= 0.3
    # No lip or step within 2 mm of the edge: the sphere's profile inward from the rim is
    # concave, so convex bends there would be made by the meshing.
    lip = rim_profile_second_difference_mm(p, f, spacing_mm=step * MM_PER_PX, convex_only=True)
    assert np.percentile(lip, 95) < 0.05
    # ...and the rim keeps the sphere's depth (slope 0.8 there; the outline follows the
    # pixelated mask to ~0.3 px, and depth is averaged along it)
    err = np.abs(p[:, 2] + sphere_depth(np.hypot(p[:, 0], p[:, 1])))
    if name == "notch":  # near the slot's corners the depth varies fast along the outline
        corners = _notch_corners()
        dist = np.min(np.linalg.norm(p[:, None, :2] - corners[None], axis=2), axis=1)
        assert err.max() < 0.5
        err = err[dist > 5.0]
    assert err.max() < 0.15
    if name == "disc":
        r = np.hypot(p[:, 0], p[:, 1])
        assert err[r < 45.0 - rim_smoothing_mm(MM_PER_PX)[1] - 2 * MM_PER_PX].max() < 0.01


def _check_solid(solid, surface):
    pts = np.asarray(solid.points, dtype=np.float64)
    faces = solid.regular_faces
    tm = trimesh.Trimesh(pts, faces, process=False)
    assert tm.is_watertight and tm.is_winding_consistent and tm.is_volume
    assert tm.volume > 0
    tri = pts[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    assert area.min() > 1e-6
    # true size: the footprint is the surface's
    np.testing.assert_allclose(solid.bounds[:4], surface.bounds[:4], atol=1e-5)
    # flat back plate, a copy of the surface's vertices
    z = pts[:, 2]
    back = np.isclose(z, z.min(), atol=1e-9)
    assert back.sum() == surface.n_points
    # vertical walls: every triangle that is neither relief nor plate has a horizontal normal
    normals = tm.face_normals
    plate = np.isclose(tri[:, :, 2], z.min(), atol=1e-9).all(axis=1)
    n_front = surface.n_cells
    wall = np.ones(len(faces), bool)
    wall[:n_front] = False
    wall &= ~plate
    assert wall.sum() == 2 * len(np.concatenate(boundary_loops(surface.regular_faces)))
    assert np.abs(normals[wall, 2]).max() < 1e-9
    return tm


@pytest.mark.parametrize("name", sorted(OUTLINE_SHAPES))
def test_solid_walls_follow_the_outline(name):
    mesh, mask, p, f = _mesh(name, 1.6)
    tm = _check_solid(make_solid(mesh, base_mm=2.0), mesh)
    rounded = make_solid(mesh, base_mm=2.0, edge_mm=3.0)
    tr = _check_solid(rounded, mesh)
    # the relief's rim drops by the full radius, points 3 mm inside not at all, and the
    # rounding takes material off
    rp = np.asarray(rounded.points, dtype=np.float64)[: mesh.n_points]
    outline = boundary_loops(f)[0]
    np.testing.assert_allclose(rp[outline, 2], p[outline, 2] - 3.0, atol=1e-5)
    from face3d_mesh._outline import nearest_segment

    xy = p[:, :2]
    _, _, dist = nearest_segment(xy[outline], xy[np.roll(outline, -1)], xy, max_dist=10)
    far = dist > 3.0 + 1e-6
    np.testing.assert_allclose(rp[far, 2], p[far, 2], atol=1e-6)
    assert (rp[~far, 2] < p[~far, 2] + 1e-9).all()
    # the plate stays base_mm behind the deepest point (the rim lowered by up to 3 mm):
    # the rounded solid is the sharp one, 3 mm taller, less the rounded-off rim
    z = np.asarray(rounded.points)[:, 2]
    assert z.min() == pytest.approx(rp[:, 2].min() - 2.0, abs=1e-5)
    area = _footprint_area(mesh)
    lowered = p[:, 2].min() - rp[:, 2].min()
    assert tm.volume < tr.volume < tm.volume + lowered * area


def _footprint_area(mesh) -> float:
    p = np.asarray(mesh.points, dtype=np.float64)[:, :2]
    t = p[mesh.regular_faces]
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    return float(np.sum(0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])))


def test_sample_photo_outline_rim_and_solid(astronaut_rec, head_scan_rec):
    for rec in (astronaut_rec, head_scan_rec):
        mesh = rec.mesh
        p = np.asarray(mesh.points, dtype=np.float64)
        f = mesh.regular_faces
        step_mm = mesh.field_data["grid_step_px"][0] * rec.mm_per_px
        loops = boundary_loops(f)
        outline = loops[0]
        assert np.mean(turn_angles_deg(p, outline) > 30) <= 0.02
        assert np.percentile(rim_second_difference_mm(p, outline), 95) <= 0.3
        # triangle shapes on the pixel grid the surface is triangulated on (the
        # perspective moves steep parts sideways)
        grid = np.asarray(_on_the_pixel_grid(rec).points, dtype=np.float64)
        near = band_faces(grid, f, 2 * step_mm + rec.mm_per_px)
        assert min_angles_deg(grid, f)[near].min() >= 10
        finite = np.isfinite(rec.depth_mm)
        assert inside_mask(p, finite, to_pixels=rec.mesh_to_pixel).all()
        length = edge_lengths(grid, outline) / step_mm
        assert 0.5 < length.min() and length.max() < 1.5
        # no lip: within 2 mm of the edge the profile inward bends toward the camera
        # hardly more than it does 2-4 mm in (where the flat mask margin meets the face),
        # and under 0.5 mm (the astronaut: 0.40 against 0.34 in; before the crop was
        # smoothed against aliasing, 0.44 against 0.49, the inner bends its ripples)
        lip = rim_profile_second_difference_mm(p, f, spacing_mm=step_mm, convex_only=True)
        inner = rim_profile_second_difference_mm(
            p, f, spacing_mm=step_mm, start_mm=2.0, convex_only=True
        )
        assert np.percentile(lip, 95) <= min(1.25 * np.percentile(inner, 95), 0.5)
        for edge in (0.0, 2.0):
            _check_solid(rec.solid(base_mm=3.0, edge_mm=edge), _on_the_pixel_grid(rec))


def _on_the_pixel_grid(rec):
    """The surface mapped orthographically (the eyes' scale about the nose tip), the
    grid its solid is built on."""
    u, v, d = rec.mesh_to_pixel(np.asarray(rec.mesh.points, np.float64))
    (u0, v0), s = rec.nose_px, rec.mm_per_px
    flat = rec.mesh.copy()
    flat.points = np.column_stack([(u - u0) * s, -(v - v0) * s, -d]).astype(np.float32)
    return flat


def _random_mask(rng, size):
    v, u = np.mgrid[0:size, 0:size].astype(float)
    mask = np.zeros((size, size), bool)
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0.2, 0.8, 2) * size
        a, b = rng.uniform(0.05, 0.4, 2) * size
        t = rng.uniform(0, np.pi)
        x = (u - cx) * np.cos(t) + (v - cy) * np.sin(t)
        y = -(u - cx) * np.sin(t) + (v - cy) * np.cos(t)
        mask |= (x / a) ** 2 + (y / b) ** 2 < 1
    for _ in range(int(rng.integers(0, 4))):  # bites and holes, round or square
        cx, cy = rng.uniform(0, 1, 2) * size
        a, b = rng.uniform(0.02, 0.2, 2) * size
        if rng.uniform() < 0.5:
            mask &= ~((np.abs(u - cx) < a) & (np.abs(v - cy) < b))
        else:
            mask &= ~(((u - cx) / a) ** 2 + ((v - cy) / b) ** 2 < 1)
    if rng.uniform() < 0.2:  # a patch of 2-pixel checkerboard
        r0 = int(rng.integers(0, size - 10))
        mask[r0 : r0 + 10, r0 : r0 + 10] = ((u // 2 + v // 2) % 2 == 0)[r0 : r0 + 10, r0 : r0 + 10]
    return mask, u, v


def test_random_masks_give_valid_surfaces():
    from test_surface import assert_manifold

    from face3d_mesh.errors import UsageError

    rng = np.random.default_rng(3)
    made = 0
    for _ in range(40):
        size = int(rng.integers(40, 160))
        mask, u, v = _random_mask(rng, size)
        depth = np.where(mask, 10 + 0.01 * (u - size / 2) ** 2 + 0.02 * v, np.nan)
        step = float(np.exp(rng.uniform(np.log(0.3), np.log(6))))
        origin = (size / 2, size / 2)
        try:
            mesh = depth_to_mesh(
                depth.astype(np.float32), mm_per_px=0.5, origin_px=origin, grid_step_px=step
            )
        except UsageError as exc:  # only a region too small for the step may be refused
            assert "too small" in str(exc)
            continue
        made += 1
        assert_manifold(mesh)
        p = np.asarray(mesh.points, dtype=np.float64)
        assert inside_mask(p, mask, mm_per_px=0.5, origin_px=origin).all()
        t = p[mesh.regular_faces][:, :, :2]
        e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
        assert (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] > 0).all()  # all facing +z
    assert made >= 35
