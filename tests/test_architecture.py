"""Tests for nse_tf.space.architecture: NetworkSpec JSON round trip and validation messages."""

from __future__ import annotations

import json

import pytest

from nse_tf.space.architecture import ARCH_FORMAT, ARCH_VERSION, Architecture, ArchitectureError, NetworkSpec
from nse_tf.space.macro import MacroSpace, get_space
from nse_tf.space.published import published_names, published_spec

CUSTOM_POOL = ("mb_k3_t3_d2", "mb_k5_t3_g12", "rec_k5_t2", "normal_k3_t1", "dual_k3_t1", "mb_k3_t1")


def custom_spec() -> NetworkSpec:
    space = get_space("small", pool=CUSTOM_POOL)
    cells = [[] if c.kind == "N" and c.index % 3 == 0 else [c.index % 6, (c.index + 2) % 6] for c in space.cells()]
    return NetworkSpec(space, Architecture.from_cells(cells, space.get_pool()), "custom-net")


def all_specs():
    return [published_spec(n) for n in published_names()] + [custom_spec()]


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.name)
def test_json_round_trip(spec, tmp_path):
    path = tmp_path / f"{spec.name}.json"
    spec.save(path)
    loaded = NetworkSpec.load(path)
    assert loaded == spec
    assert loaded.to_dict() == spec.to_dict()
    data = json.loads(path.read_text())
    assert data["format"] == ARCH_FORMAT and data["version"] == ARCH_VERSION and data["name"] == spec.name
    # cells are written as op names, readable and independent of pool order
    assert data["cells"] == spec.arch.names(spec.space.get_pool())
    assert NetworkSpec.from_dict(json.loads(spec.to_json())) == spec
    assert NetworkSpec.from_dict(spec.to_dict()).arch.cells == spec.arch.cells


def test_published_spec_cells_follow_the_method():
    spec = published_spec("NSENet-27")
    assert spec.arch.cells[7] == (11, 17)
    assert spec.arch.names(spec.space.get_pool())[7] == ["mb_k5_t6", "mb_k9_t6"]
    assert spec.arch.cells[-1] == (3, 14, 19)
    spec = published_spec("NSENet")
    assert spec.arch.names(spec.space.get_pool())[1] == ["mb_k3_t6_g21"]  # 34 = 27 + 7: k3, t6 (7 // 3 = 2), groups (2, 1)
    spec = published_spec("NSENet-GPU")
    assert spec.arch.names(spec.space.get_pool())[0] == ["rec_k5_t4"]
    assert len(spec.arch.cells[-1]) == 5
    with pytest.raises(ValueError, match="NoSuchNet"):
        published_spec("NoSuchNet")


def test_custom_pool_serialised_as_names():
    data = custom_spec().to_dict()
    assert data["space"]["pool"] == list(CUSTOM_POOL)
    assert published_spec("NSENet").to_dict()["space"]["pool"] == "mac72"


def test_from_cells_accepts_names_and_indices():
    pool = get_space("small").get_pool()
    arch = Architecture.from_cells([["mb_k3_t3", 0], [21]], pool)
    assert arch.cells == ((0, 3), (21,))
    assert str(arch) == "[0,3] [21]"


# ---------------------------------------------------------------- validation


def _small_cells(space: MacroSpace) -> list[list[int]]:
    return [[0] for _ in space.cells()]


def test_empty_r_or_e_cell_rejected_naming_the_cell():
    space = get_space("small")
    kinds = [c.kind for c in space.cells()]
    for kind in ("R", "E"):
        index = kinds.index(kind)
        cells = _small_cells(space)
        cells[index] = []
        with pytest.raises(ArchitectureError) as err:
            NetworkSpec(space, Architecture.from_cells(cells, space.get_pool()))
        assert f"cell {index} ({kind})" in str(err.value)


def test_n_cell_may_be_empty():
    space = get_space("small")
    cells = [[] if c.kind == "N" else [0] for c in space.cells()]
    spec = NetworkSpec(space, Architecture.from_cells(cells, space.get_pool()))
    assert sum(len(c) for c in spec.arch.cells) == sum(c.kind != "N" for c in space.cells())


def test_unknown_op_name_rejected_naming_cell_and_op():
    space = get_space("small")
    cells = _small_cells(space)
    cells[4] = ["mb_k3_t3", "mb_k3_t3_g12"]  # a mac72 op, not in mac27
    with pytest.raises(ArchitectureError) as err:
        Architecture.from_cells(cells, space.get_pool())
    assert "cell 4" in str(err.value) and "mb_k3_t3_g12" in str(err.value)
    cells[4] = ["not_an_op"]
    with pytest.raises(ArchitectureError, match=r"cell 4.*not_an_op"):
        Architecture.from_cells(cells, space.get_pool())
    data = published_spec("NSENet-27").to_dict()
    data["cells"][2] = ["rec_k9_t1"]
    with pytest.raises(ArchitectureError) as err:
        NetworkSpec.from_dict(data, source="nsenet27.json")
    assert "nsenet27.json" in str(err.value) and "cell 2" in str(err.value) and "rec_k9_t1" in str(err.value)


def test_wrong_cell_count_rejected():
    space = get_space("small")
    n = len(space.cells())
    for cells in (_small_cells(space)[:-1], _small_cells(space) + [[0]]):
        with pytest.raises(ArchitectureError) as err:
            NetworkSpec(space, Architecture.from_cells(cells, space.get_pool()))
        assert str(len(cells)) in str(err.value) and str(n) in str(err.value)
    data = published_spec("NSENet-27").to_dict()
    data["cells"] = data["cells"][:-1]
    with pytest.raises(ArchitectureError, match="17 cells"):
        NetworkSpec.from_dict(data)


def test_out_of_range_index_rejected():
    space = get_space("small")
    cells = _small_cells(space)
    cells[3] = [27]
    with pytest.raises(ArchitectureError, match=r"cell 3.*27"):
        Architecture.from_cells(cells, space.get_pool())
    cells[3] = [-1]
    with pytest.raises(ArchitectureError, match=r"cell 3.*-1"):
        Architecture.from_cells(cells, space.get_pool())
    # constructed directly (no pool at hand): caught by validation against the space
    raw = [tuple(c) for c in _small_cells(space)]
    raw[5] = (0, 40)
    with pytest.raises(ArchitectureError, match=r"cell 5 \(N\).*40"):
        NetworkSpec(space, Architecture(tuple(raw)))


def test_duplicate_op_in_a_cell_rejected():
    space = get_space("small")
    cells = _small_cells(space)
    cells[2] = [3, "mb_k3_t3"]
    with pytest.raises(ArchitectureError, match="cell 2"):
        Architecture.from_cells(cells, space.get_pool())
    raw = [tuple(c) for c in _small_cells(space)]
    raw[2] = (3, 3)
    with pytest.raises(ArchitectureError, match="cell 2"):
        NetworkSpec(space, Architecture(tuple(raw)))


def test_wrong_format_or_version_rejected(tmp_path):
    data = published_spec("NSENet-27").to_dict()
    for key, value, word in (("format", "keras.model", "format"), ("version", 99, "version")):
        bad = dict(data, **{key: value})
        with pytest.raises(ArchitectureError, match=word):
            NetworkSpec.from_dict(bad)
    missing = dict(data)
    del missing["format"]
    with pytest.raises(ArchitectureError, match="format"):
        NetworkSpec.from_dict(missing)
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ArchitectureError, match="broken.json"):
        NetworkSpec.load(path)
    path.write_text(json.dumps(dict(data, space={**data["space"], "stem_stride": 3})))
    with pytest.raises(ArchitectureError, match="stem_stride"):
        NetworkSpec.load(path)
    no_cells = dict(data)
    del no_cells["cells"]
    with pytest.raises(ArchitectureError, match="cells"):
        NetworkSpec.from_dict(no_cells)
