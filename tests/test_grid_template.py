"""template-grids: each ARC primitive on hand-made grids, the search, the pool prior, the budgets."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from baselines.arc_dsl import grids as G
from baselines.arc_dsl import primitives as P
from baselines.arc_dsl.search import fit_colour_map, search
from baselines.grid_template import TemplateGrids
from benchmark.episodes import EpisodeBatch
from benchmark.suites.arc import score_attempts


def A(rows) -> np.ndarray:
    return np.array(rows, dtype=np.uint8)


def prim(name: str, colours=()) -> P.Prim:
    table = {p.name: p for p in P.static_prims() + P.colour_prims(colours)}
    return table[name]


def run(name: str, g, colours=()):
    out = P.apply(prim(name, colours), A(g))
    return None if out is None else out.tolist()


# -- geometry --------------------------------------------------------------------------------------
def test_rotations_flips_and_transposes():
    g = [[1, 2], [3, 4]]
    assert run("rot90", g) == [[2, 4], [1, 3]]
    assert run("rot180", g) == [[4, 3], [2, 1]]
    assert run("rot270", g) == [[3, 1], [4, 2]]
    assert run("flip_lr", g) == [[2, 1], [4, 3]]
    assert run("flip_ud", g) == [[3, 4], [1, 2]]
    assert run("transpose", g) == [[1, 3], [2, 4]]
    assert run("antitranspose", g) == [[4, 2], [3, 1]]


def test_crops_and_trim():
    g = [[0, 0, 0, 0], [0, 3, 0, 0], [0, 0, 4, 0], [0, 0, 0, 0]]
    assert run("crop_nonzero", g) == [[3, 0], [0, 4]]
    assert run("crop_nonbg", [[5, 5, 5], [5, 1, 5], [5, 5, 5]]) == [[1]]
    assert run("trim_border", g) == [[3, 0], [0, 4]]
    assert run("trim_border", [[1, 2], [3, 4]]) is None
    assert run("crop_colour_4", g, colours=[4]) == [[4]]
    assert run("crop_nonzero", [[0, 0]]) is None


def test_scaling_tiling_mirroring_and_fractal():
    g = [[1, 2]]
    assert run("scale_up2", g) == [[1, 1, 2, 2], [1, 1, 2, 2]]
    assert run("scale_down2", [[1, 1, 2, 2], [1, 1, 2, 2]]) == [[1, 2]]
    assert run("scale_down2", [[1, 0], [1, 1]]) is None  # not block-constant
    assert run("tile1x2", g) == [[1, 2, 1, 2]]
    assert run("mirror_lr", g) == [[1, 2, 2, 1]]
    assert run("mirror_rl", g) == [[2, 1, 1, 2]]
    assert run("mirror_ud", g) == [[1, 2], [1, 2]]
    assert run("mirror_4", [[1, 2]]) == [[1, 2, 2, 1], [1, 2, 2, 1]]
    assert np.array(run("rot_4", [[1, 2], [3, 4]])).shape == (4, 4)
    assert run("kron_self", [[1, 0], [0, 0]]) == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert run("kron_neg", [[0, 7], [7, 7]]) == [[0, 0, 7, 0], [0, 0, 0, 0], [7, 0, 7, 0], [0, 0, 0, 0]]
    assert run("invert", [[0, 7], [7, 7]]) == [[7, 0], [0, 0]]
    assert run("invert", [[0, 7, 1]]) is None  # three colours
    assert np.array(run("tile_by_colours", [[1, 2], [3, 3]])).shape == (6, 6)
    assert np.array(run("tile_by_side", [[1, 2], [3, 3]])).shape == (4, 4)
    assert run("half_left", [[1, 2, 3, 4]]) == [[1, 2]]
    assert run("half_bottom", [[1], [2], [3]]) == [[3]]
    assert run("scale_up4", np.zeros((8, 8), dtype=int)) is None  # 32 x 32: over the ARC limit


def test_remaining_geometry_variants():
    g = [[1, 2], [3, 0]]
    assert run("mirror_du", g) == [[3, 0], [1, 2], [1, 2], [3, 0]]
    assert run("mirror_4r", [[1, 2]]) == [[2, 1, 1, 2], [2, 1, 1, 2]]
    assert run("rot_4", g) == [[1, 2, 3, 1], [3, 0, 0, 2], [2, 0, 0, 3], [1, 3, 2, 1]]
    assert run("kron_self_inv", [[1, 0], [0, 0]]) == [[0, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert run("tile3x1", [[4]]) == [[4], [4], [4]]
    assert run("tile2x1", g) == g + g
    assert run("tile2x2", [[4]]) == [[4, 4], [4, 4]]
    assert run("tile3x3", [[4]]) == [[4] * 3] * 3
    assert run("tile1x3", [[4]]) == [[4, 4, 4]]
    assert run("scale_up3", [[4]]) == [[4] * 3] * 3
    assert run("scale_down3", [[4] * 3] * 3) is None  # 1 x 1 blocks of the whole grid: refused
    assert run("half_top", [[1], [2]]) == [[1]]
    assert run("half_right", [[1, 2, 3]]) == [[3]]


def test_remaining_cell_variants():
    assert run("gravity_left", [[0, 1, 0, 2]]) == [[1, 2, 0, 0]]
    assert run("shift_left", [[0, 1, 0]]) == [[1, 0, 0]]
    assert run("shift_down", [[1], [0], [0]]) == [[0], [1], [0]]
    assert run("symmetrize_rot", [[1, 0], [0, 0]]) == [[1, 1], [1, 1]]
    assert run("symmetrize_all", [[0, 2, 0], [0, 0, 0], [0, 0, 0]]) == [[0, 2, 0], [2, 0, 2], [0, 2, 0]]
    assert run("symmetrize_diag", [[1, 2, 3]]) is None  # not square
    assert run("paint_rows_first", [[3, 5, 5], [0, 0, 0], [0, 4, 5]]) == [[3, 3, 3], [0, 0, 0], [0, 4, 4]]
    assert run("paint_cols_last", [[3, 0], [5, 0], [0, 0]]) == [[5, 0], [5, 0], [0, 0]]
    m = G.MARK
    assert run("connect_rows_mark", [[2, 0, 2], [0, 0, 0], [0, 0, 0]])[0] == [2, m, 2]
    assert run("connect_cols_mark", [[2, 0, 0], [0, 0, 0], [2, 0, 0]])[1] == [m, 0, 0]


# -- cell-level rules --------------------------------------------------------------------------------
def test_gravity_and_shift():
    g = [[1, 0], [0, 0], [0, 2]]
    assert run("gravity_down", g) == [[0, 0], [0, 0], [1, 2]]
    assert run("gravity_up", g) == [[1, 2], [0, 0], [0, 0]]
    assert run("gravity_right", [[1, 0, 2, 0]]) == [[0, 0, 1, 2]]
    assert run("shift_right", [[1, 0, 0], [0, 0, 0]]) == [[0, 1, 0], [0, 0, 0]]
    assert run("shift_up", g) == [[0, 0], [0, 2], [0, 0]]


def test_symmetry_completion_and_repair():
    assert run("symmetrize_lr", [[1, 0, 0], [2, 0, 0]]) == [[1, 0, 1], [2, 0, 2]]
    assert run("symmetrize_ud", [[3], [0], [0]]) == [[3], [0], [3]]
    assert run("symmetrize_diag", [[0, 4], [0, 0]]) == [[0, 4], [4, 0]]
    assert run("symmetrize_4", [[1, 0], [0, 0]]) == [[1, 1], [1, 1]]
    pic = np.array([[1, 2, 2, 1], [3, 4, 4, 3], [5, 6, 6, 5]], dtype=np.uint8)
    hidden = pic.copy()
    hidden[1:3, 2:4] = 8  # a mask of colour 8 over a left-right symmetric picture
    assert run("repair_8", hidden, colours=[8]) == pic.tolist()
    assert run("repair_patch_8", hidden, colours=[8]) == pic[1:3, 2:4].tolist()
    assert run("repair_7", hidden, colours=[7]) is None  # no cell of colour 7
    tiled = np.tile(A([[1, 2, 3], [4, 5, 6]]), (3, 3))
    holed = tiled.copy()
    holed[1:3, 2:5] = 0  # a hole in a periodic pattern
    assert run("periodic_repair_0", holed, colours=[0]) == tiled.tolist()
    assert run("periodic_patch_0", holed, colours=[0]) == tiled[1:3, 2:5].tolist()


def test_rays_and_connecting_lines():
    g = [[0, 0, 0], [0, 2, 0], [0, 0, 0]]
    assert run("ray_down", g) == [[0, 0, 0], [0, 2, 0], [0, 2, 0]]
    assert run("ray_left", g) == [[0, 0, 0], [2, 2, 0], [0, 0, 0]]
    assert run("rays_cross", g) == [[0, 2, 0], [2, 2, 2], [0, 2, 0]]
    assert run("rays_vertical", g) == [[0, 2, 0], [0, 2, 0], [0, 2, 0]]
    assert run("rays_horizontal", g) == [[0, 0, 0], [2, 2, 2], [0, 0, 0]]
    assert run("rays_diagonal", g) == [[2, 0, 2], [0, 2, 0], [2, 0, 2]]
    assert run("ray_up", [[0], [0], [3], [0], [4]]) == [[3], [3], [3], [4], [4]]  # stops at the next cell
    assert run("ray_right", [[5, 0, 0]]) == [[5, 5, 5]]
    assert run("connect_rows", [[3, 0, 0, 3, 0, 4]]) == [[3, 3, 3, 3, 0, 4]]
    assert run("connect_cols", [[1], [0], [0], [1]]) == [[1], [1], [1], [1]]
    assert run("connect_both", [[1, 0, 1], [0, 0, 0], [1, 0, 0]]) == [[1, 1, 1], [1, 0, 0], [1, 0, 0]]


def test_rings_holes_interior_and_boxes_use_markers():
    g = [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    m = G.MARK
    assert run("ring4", g) == [[0, m, 0], [m, 1, m], [0, m, 0]]
    assert run("ring8", g) == [[m, m, m], [m, 1, m], [m, m, m]]
    box = [[0, 0, 0, 0, 0], [0, 2, 2, 2, 0], [0, 2, 0, 2, 0], [0, 2, 2, 2, 0], [0, 0, 0, 0, 0]]
    holes = run("fill_holes", box)
    assert holes[2][2] == m and holes[0][0] == 0
    solid = np.zeros((5, 5), dtype=int)
    solid[1:4, 1:4] = 3
    inner = run("mark_interior", solid)
    assert inner[2][2] == m and inner[1][1] == 3
    assert run("fill_boxes_8", [[1, 0], [0, 1]]) == [[1, m], [m, 1]]
    assert run("fill_holes_own", box)[2][2] == 2
    outlined = np.array(run("box_outline8", [[0, 0, 0, 0], [0, 3, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    assert (outlined[:3, :3] == [[m, m, m], [m, 3, m], [m, m, m]]).all() and outlined[3, 3] == 0
    assert run("frame", np.zeros((3, 3), dtype=int)) == [[m, m, m], [m, 0, m], [m, m, m]]
    assert run("majority_pixel", [[0, 1, 1, 2], [0, 0, 0, 0]]) == [[1]]
    assert run("minority_pixel", [[0, 1, 1, 2], [0, 0, 0, 0]]) == [[2]]


# -- objects ---------------------------------------------------------------------------------------------
OBJ = [[1, 1, 0, 0, 0],
       [1, 1, 0, 2, 0],
       [0, 0, 0, 0, 0],
       [3, 0, 0, 4, 4],
       [0, 0, 0, 4, 0]]


def test_components_by_colour_and_connectivity():
    o = G.objects(A(OBJ), 4, False)
    assert o.n == 4 and sorted(o.sizes.tolist()) == [1, 1, 3, 4]
    diag = A([[1, 0], [0, 1]])
    assert G.objects(diag, 4, False).n == 2 and G.objects(diag, 8, False).n == 1
    assert G.objects(A([[1, 2]]), 4, True).n == 1  # multi-colour: one object
    assert G.background(A([[5, 5], [5, 1]])) == 5


def test_crop_keep_and_remove_objects():
    assert run("crop_largest_mono4", OBJ) == [[1, 1], [1, 1]]
    assert run("crop_smallest_mono4", OBJ) is None  # two single cells: a tie
    assert run("crop_bbox_largest_mono4", OBJ) is None  # two 2 x 2 boxes: a tie
    assert run("crop_bbox_largest_mono4", [[1, 0, 1], [0, 0, 0], [2, 2, 0]]) == [[2, 2]]
    kept = run("keep_largest_mono4", OBJ)
    assert kept == [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0] * 5, [0] * 5, [0] * 5]
    removed = np.array(run("remove_largest_mono4", OBJ))
    assert removed[:2, :2].sum() == 0 and removed[3, 0] == 3
    mixed = [[1, 1, 0], [2, 1, 0], [0, 0, 0]]
    assert run("crop_only_largest_mono4", mixed) == [[1, 1], [0, 1]]
    assert run("crop_largest_mono4", mixed) == [[1, 1], [2, 1]]
    rare = [[1, 0, 1, 0, 2], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]]
    assert run("crop_rare_colour_mono4", rare) == [[2]]
    shapes = [[1, 1, 0, 2, 2, 0, 3], [0, 0, 0, 0, 0, 0, 3]]
    assert run("crop_rare_shape_multi4", shapes) == [[3], [3]]
    assert run("crop_common_shape_mono4", shapes) == [[1, 1]]
    multi = [[1, 2, 0, 3], [0, 0, 0, 3]]
    assert run("crop_most_colours_multi4", multi) == [[1, 2]]
    assert run("remove_noise1_4", [[1, 1, 0, 2], [0, 0, 0, 0]])[0] == [1, 1, 0, 0]
    assert run("remove_noise2_4", [[1, 1, 0, 2, 2, 2], [0] * 6])[0] == [0, 0, 0, 2, 2, 2]


def test_recolour_by_rule_through_markers():
    m = G.MARK
    ranked = run("mark_size_rank_mono4", [[1, 1, 1, 0, 1, 1, 0, 1], [0] * 8])
    assert ranked[0] == [m, m, m, 0, m + 1, m + 1, 0, m + 2]
    two = [[1, 1, 0, 1], [0, 0, 0, 0]]
    assert run("mark_size_max_mono4", two)[0] == [m, m, 0, 1]
    assert run("mark_size_min_mono4", two)[0] == [1, 1, 0, m]
    assert run("mark_size_size_mono4", two)[0] == [m + 1, m + 1, 0, m]
    small = run("mark_small2_4", [[1, 1, 1, 0, 2, 2, 0, 3], [0] * 8])
    assert small[0] == [1, 1, 1, 0, m, m, 0, m]
    assert run("crop_object_with_4", [[1, 4, 0, 0], [1, 1, 0, 2], [0, 0, 0, 2]], colours=[4]) == [[1, 4], [1, 1]]
    ringed = [[1, 1, 1, 0, 2, 0], [1, 0, 1, 0, 2, 0], [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]]
    holes = run("mark_by_holes", ringed)
    assert holes[0][0] == m + 1 and holes[0][4] == m and holes[1][1] == 0
    rep = run("mark_shape_repeat_4", [[1, 0, 2, 0, 3, 3]])
    assert rep == [[m, 0, m, 0, m + 1, m + 1]]
    border = run("mark_touching_border_4", [[1, 0, 0], [0, 0, 0], [0, 0, 0]] + [[0, 2, 0]] + [[0, 0, 0]])
    assert border[0][0] == m and border[3][1] == 2


def test_objects_fall_as_rigid_shapes():
    g = [[1, 1, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]]
    assert run("objects_fall_down", g) == [[0, 0, 0], [0, 0, 0], [1, 1, 0], [0, 1, 0]]
    assert run("objects_fall_right", [[2, 0, 0]]) == [[0, 0, 2]]
    assert run("objects_fall_up", [[0], [0], [5]]) == [[5], [0], [0]]
    assert run("objects_fall_left", [[0, 0, 7]]) == [[7, 0, 0]]


# -- regions -----------------------------------------------------------------------------------------------
def test_split_by_separator_lines_and_logical_ops():
    g = A([[1, 0, 5, 1, 1],
           [0, 0, 5, 0, 1]])
    cells, nr, nc = G.split_by_lines(g)
    assert (nr, nc) == (1, 2) and cells[0].tolist() == [[1, 0], [0, 0]]
    m = G.MARK
    assert run("and_lines", g) == [[m, 0], [0, 0]]
    assert run("or_lines", g) == [[m, m], [0, m]]
    assert run("xor_lines", g) == [[0, m], [0, m]]
    assert run("nor_lines", g) == [[0, 0], [m, 0]]
    assert run("left_only_lines", g) == [[0, 0], [0, 0]]
    assert run("right_only_lines", g) == [[0, m], [0, m]]
    assert run("xor_cols", [[1, 0, 1, 1]]) == [[0, m]]  # halves, no separator
    assert run("and_rows", [[2, 0], [2, 0]]) == [[m, 0]]
    assert G.split_by_lines(A([[1, 2], [3, 4]])) is None


def test_overlay_select_and_cells_to_pixels():
    g = [[1, 0, 5, 0, 2, 5, 0, 0],
         [0, 0, 5, 0, 0, 5, 0, 3]]
    assert run("overlay_lines", g) == [[1, 2], [0, 3]]
    assert run("overlay_rev_lines", [[1, 5, 2], [0, 5, 0]]) == [[1], [0]]
    assert run("select_most_cell", [[1, 1, 5, 1, 0, 5, 0, 0]]) == [[1, 1]]
    assert run("select_fewest_cell", [[1, 1, 5, 1, 0, 5, 0, 0]]) == [[0, 0]]
    assert run("select_odd_cell", [[1, 5, 1, 5, 2]]) == [[2]]
    assert run("select_most_colours_cell", [[1, 2, 5, 1, 1]]) == [[1, 2]]
    assert run("select_fewest_colours_cell", [[1, 2, 5, 1, 1]]) == [[1, 1]]
    grid = [[1, 1, 5, 0, 0], [1, 0, 5, 0, 2]]
    assert run("cells_to_pixels", grid) == [[1, 2]]
    quads = [[0, 1, 0, 5, 0, 2, 2], [1, 1, 0, 5, 0, 2, 0], [5, 5, 5, 5, 5, 5, 5], [0, 0, 0, 5, 0, 4, 4],
             [3, 3, 0, 5, 0, 4, 0], [0, 3, 0, 5, 0, 0, 0]]  # four cells of unequal size, 2 x 2 contents
    assert run("cells_assemble", quads) == [[0, 1, 2, 2], [1, 1, 2, 0], [3, 3, 4, 4], [0, 3, 4, 0]]
    uneven = [[1, 5, 0, 0], [1, 5, 0, 2]]  # cells of different widths
    assert run("cells_to_pixels", uneven) == [[1, 2]]
    blocks = np.kron(A([[3, 0], [0, 4]]), np.ones((3, 3), dtype=np.uint8))
    blocks[0, 0] = 0  # a block is summarized by its most frequent non-background colour
    assert run("blocks2_to_pixels", blocks) == [[3, 0], [0, 4]]
    assert run("blocks3_to_pixels", np.zeros((4, 4), dtype=int)) is None  # 4 is not a multiple of 3
    scattered = np.zeros((9, 9), dtype=int)
    scattered[0:2, 0:2], scattered[0:2, 6:8], scattered[6:8, 3:5] = 1, 2, 3
    scattered[4, 8] = 5  # noise: ignored
    assert run("objects_to_pixels", scattered) == [[1, 0, 2], [0, 3, 0]]


def test_colour_primitives():
    g = [[1, 2], [0, 0]]
    assert run("erase_2", g, colours=[2]) == [[1, 0], [0, 0]]
    assert run("keep_2", g, colours=[2]) == [[0, 2], [0, 0]]
    assert run("erase_3", g, colours=[3]) is None
    names = [p.name for p in P.prims_for([A([[1, 2]]), A([[2, 3]])])]
    assert "erase_2" in names and "erase_1" not in names  # only colours every input has


@pytest.mark.parametrize("g", [[[0]], [[1, 2, 3]], [[0, 0], [0, 0]], np.arange(30 * 30).reshape(30, 30) % 10,
                               [[1, 0, 5, 0, 1], [0, 2, 5, 2, 0], [5, 5, 5, 5, 5], [1, 0, 5, 0, 1]]])
def test_every_primitive_returns_a_valid_grid_or_none(g):
    for p in P.prims_for([A(g)]):
        out = P.apply(p, A(g))
        if out is not None:
            assert out.ndim == 2 and out.dtype == np.uint8 and 0 < out.shape[0] <= 30 and 0 < out.shape[1] <= 30
            assert out.max() < G.N_COLOURS, p.name


def test_learned_layouts_and_patches_for_enlargements():
    from baselines.arc_dsl.search import apply_layout, apply_patches, fit_layout, fit_patches

    xs = [A([[1, 2], [3, 4]]), A([[5, 0], [0, 6]])]
    layout = lambda g: np.block([[g, g[:, ::-1]], [np.zeros_like(g), g[::-1, ::-1]]])  # noqa: E731
    fitted = fit_layout(xs, [layout(x) for x in xs])
    assert fitted == [["g", "lr"], ["0", "rot180"]]
    q = A([[7, 8], [9, 0]])
    assert np.array_equal(apply_layout(fitted, q), layout(q))
    patch = {0: A([[0, 0], [0, 0]]), 5: A([[1, 2], [2, 1]])}
    enlarge = lambda g: np.block([[patch[int(c)] for c in row] for row in g])  # noqa: E731
    xs = [A([[5, 0], [0, 5]]), A([[0, 5, 5]])]
    table = fit_patches(xs, [enlarge(x) for x in xs])
    assert set(table) == {0, 5} and np.array_equal(apply_patches(table, A([[5, 5]])), enlarge(A([[5, 5]])))
    assert apply_patches(table, A([[3]])) is None  # a colour never seen
    assert fit_patches(xs, [x.repeat(2, 0).repeat(2, 1) for x in xs]) is None  # plain scaling


def test_colour_map_fit():
    g1, y1 = A([[1, 10]]), A([[2, 3]])
    cmap = fit_colour_map([g1], [y1])
    assert cmap[1] == 2 and cmap[10] == 3
    assert fit_colour_map([A([[1, 1]])], [A([[2, 3]])]) is None  # one colour to two
    assert fit_colour_map([A([[1]])], [A([[1, 1]])]) is None      # shapes differ


# -- the search ---------------------------------------------------------------------------------------------
def _random_grids(n, seed, shape=(3, 4)):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        g = rng.integers(1, 10, size=shape)
        g[rng.random(shape) < 0.4] = 0
        out.append(g)
    return out


def test_search_finds_a_known_depth_two_program():
    """Output = scale_up2(rot90(x)): no single primitive does it, two do."""
    xs = _random_grids(4, 1)
    f = lambda g: np.rot90(g).repeat(2, 0).repeat(2, 1)  # noqa: E731
    demos = [(x, f(x)) for x in xs[:3]]
    r = search(demos, [xs[3]], max_depth=2, max_nodes=20000)
    assert r.found, r.info()
    best = r.found[0]
    assert best.depth == 2 and set(best.names) == {"rot90", "scale_up2"}
    assert np.array_equal(best.outputs[0], f(xs[3]))
    assert search(demos, [xs[3]], max_depth=1, max_nodes=20000).found == []


def test_search_resolves_markers_with_a_colour_map():
    box = np.zeros((5, 5), dtype=int)
    box[1:4, 1:4] = 2
    box[2, 2] = 0
    big = np.zeros((8, 6), dtype=int)
    big[0:4, 1:5] = 1
    big[1:3, 2:4] = 0
    big[7, 0:3] = 7  # an open cup: not a hole (connecting lines would fill it)
    big[6, 0] = big[6, 2] = 7
    demos = [(g, np.where(P.fill_holes(A(g)) == G.MARK, 4, g)) for g in (box, big)]
    q = np.zeros((4, 4), dtype=int)
    q[:3, :3] = 6
    q[1, 1] = 0
    r = search(demos, [q], max_depth=1)
    best = r.found[0]  # fill_holes, or a marker rule giving the same answer (connecting lines)
    assert best.cmap == {10: 4} and best.text().endswith("| colours 10->4")
    assert best.outputs[0][1, 1] == 4 and best.outputs[0][3, 3] == 0 and best.outputs[0][0, 0] == 6


def _batch(demos, queries):
    return EpisodeBatch("grid", "novel", 1, ["t"], [[x for x, _ in demos]], [[y for _, y in demos]], [queries])


def test_predictor_gives_two_distinct_attempts_and_info():
    xs = _random_grids(3, 2, shape=(4, 4))
    demos = [(x, np.fliplr(x)) for x in xs[:2]]
    out = TemplateGrids().predict(_batch(demos, [xs[2]]))
    answers = out[0]
    assert answers[0][0] == np.fliplr(xs[2]).tolist()
    assert len(answers[0]) <= 2 and (len(answers[0]) < 2 or answers[0][0] != answers[0][1])
    info = answers.info
    assert info["programs"][0] == "flip_lr" and info["depths"][0] == 1 and not info["timed_out"]
    assert score_attempts([[np.fliplr(xs[2])]], out)[0] == 1.0


def test_time_budget_zero_is_a_recorded_timeout_not_an_error():
    xs = _random_grids(3, 3, shape=(4, 4))
    demos = [(x, np.rot90(x).repeat(2, 0).repeat(2, 1)) for x in xs[:2]]
    out = TemplateGrids(task_seconds=0.0).predict(_batch(demos, [xs[2]]))
    assert out[0].info["timed_out"] and out[0] == [[]]
    out = TemplateGrids(split_seconds=0.0).predict(_batch(demos, [xs[2]]))
    assert out[0].info["split_budget_hit"] and out[0].info["timed_out"] and out[0] == [[]]
    r = search(demos, [xs[2]], max_nodes=5)
    assert r.exhausted and r.nodes == 5  # the node budget: deterministic


def test_fit_learns_a_prior_that_reorders_the_attempts():
    """flip_lr and rot90 both explain the demonstration; the pool decides which comes first."""
    x = A([[1, 2, 3], [4, 5, 2], [6, 4, 1]])  # equal to its anti-transpose: flip_lr(x) == rot90(x)
    demos = [(x, np.fliplr(x))]
    q = A([[1, 2, 0], [3, 4, 0], [0, 0, 7]])
    plain = TemplateGrids(depth=1, attempts=4).predict(_batch(demos, [q]))[0].info["programs"]
    assert plain.index("rot90") < plain.index("flip_lr")  # unfitted: library order
    xs = _random_grids(8, 5, shape=(3, 3))  # a pool of flip_lr tasks
    pool = SimpleNamespace(
        prompts=_Prompts([[x] for x in xs[:4]], [[np.fliplr(x)] for x in xs[:4]], [[x] for x in xs[4:]]),
        prompt_targets=[[np.fliplr(x)] for x in xs[4:]], task_hashes=list("abcd"), prompt_hashes=list("abcd"))
    fitted = TemplateGrids(depth=1).fit(pool)
    assert "rotate" not in fitted.family_cost_ and fitted.family_cost_["flip"] < fitted.family_cost_["*"]
    assert fitted.pool_programs_ == {"flip_lr": 4}
    ranked = fitted.predict(_batch(demos, [q]))[0].info["programs"]
    assert ranked[0] == "flip_lr"


class _Prompts:
    def __init__(self, sx, sy, qx):
        self.support_x, self.support_y, self.query_x = sx, sy, qx

    def __len__(self):
        return len(self.support_x)


def test_bad_parameters_name_the_predictor():
    with pytest.raises(ValueError, match="template-grids.*clock"):
        TemplateGrids(clock="sundial").predict(_batch([(A([[1]]), A([[1]]))], [A([[1]])]))
    with pytest.raises(ValueError, match="depth"):
        TemplateGrids(depth=9).predict(_batch([(A([[1]]), A([[1]]))], [A([[1]])]))


def test_reach_table_counts_tasks_by_depth_from_recorded_programs():
    import json

    import pandas as pd

    from benchmark.arc_gallery import reach_table, template_programs

    def row(tid, score, progs, depths, in_pool, predictor="template-grids"):
        return {"suite": "arc", "predictor": predictor, "split": "novel", "status": "ok", "score": score,
                "task_id": tid, "suite_config": json.dumps({"version": "ARC-AGI-1", "scoring": "per-test-input"}),
                "predictor_params": "{}", "info": json.dumps({"programs": progs, "depths": depths,
                                                               "in_pool": in_pool})}

    df = pd.DataFrame([row("a", 1.0, ["flip_lr"], [1], [3]),
                       row("b", 0.5, ["rot90 | scale_up2", "x"], [2, 1], [0, 1]),
                       row("c", 1.0, ["identity | colours 1->2"], [0], [0]),
                       row("d", 0.0, ["tile2x2"], [1], [1]),            # not solved: not counted
                       row("e", 1.0, ["flip_lr"], [1], [1], predictor="lookup")])
    progs = template_programs(df, recompute=False)
    assert list(progs["task_id"]) == ["a", "b", "c"]
    assert progs.set_index("task_id").loc["b", "second"] == "x"
    t = reach_table(progs).set_index("depth")
    assert t.loc[1, "reachable"] == 2 and t.loc[2, "reachable"] == 3 and t.loc[3, "reachable"] == 3
    assert t.loc[2, "solved"] == 1 and t.loc[2, "program_in_pool"] == 1 and t.loc[0, "reachable"] == 1
