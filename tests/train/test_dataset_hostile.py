"""Datasets under hostile edits (issue 23, finding 6): whoever can write the files can also
re-sign them, so the digests are not enough. Every shard is checked like a pack: required
fields, dtypes, shapes aligned with the manifest's rows, finite values, actions in range and
legal; the manifest's fields are typed. Each problem is one `error:` line naming file and field."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from townlet_train import cli
from townlet_train.dataset import FIELDS, DatasetError, capture, load_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hostile-data") / "ds"
    capture("L0_minimal", "scripted", 64, out, seed=1, num_envs=8, shard_steps=4)
    return out


def copy(dataset: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    if target.exists():
        shutil.rmtree(target)
    return Path(shutil.copytree(dataset, target))


def shard_arrays(directory: Path, index: int = 0) -> dict[str, np.ndarray]:
    with np.load(directory / f"shard_{index:05d}.npz", allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def rewrite_shard(directory: Path, arrays: dict[str, np.ndarray], index: int = 0) -> None:
    """Write shard `index` and re-sign it in the manifest, as anyone who can write the files can."""
    path = directory / f"shard_{index:05d}.npz"
    with path.open("wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["shards"][index]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (directory / "manifest.json").write_text(json.dumps(manifest))


def bc_error(directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert (
        cli.main(["bc", "--dataset", str(directory), "--run-dir", str(tmp_path / "bc"), "--updates", "2"])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def nan_obs(a: dict[str, np.ndarray]) -> None:
    a["obs"][3, 0] = np.nan


def short_reward(a: dict[str, np.ndarray]) -> None:
    a["reward"] = a["reward"][:-5]


def action_99(a: dict[str, np.ndarray]) -> None:
    a["action"][0] = 99


def illegal_action(a: dict[str, np.ndarray]) -> None:
    a["mask"][0, :] = False
    a["mask"][0, (a["action"][0] + 1) % a["mask"].shape[1]] = True


def no_mask(a: dict[str, np.ndarray]) -> None:
    del a["mask"]


def float64_obs(a: dict[str, np.ndarray]) -> None:
    a["obs"] = a["obs"].astype(np.float64)


def extra_member(a: dict[str, np.ndarray]) -> None:
    a["bomb"] = np.zeros(10, dtype=np.uint8)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (nan_obs, "shard_00000.npz: field 'obs' holds NaN or inf (first at row 3)"),
        (short_reward, "field 'reward' is float32 (27,), expected float32 (32,)"),
        (action_99, "field 'action' is 99 at row 0, expected 0..5"),
        (illegal_action, "field 'action' at row 0 is not legal under its 'mask'"),
        (no_mask, "field 'mask' is missing"),
        (float64_obs, "field 'obs' is float64"),
        (extra_member, "unexpected member 'bomb.npy'"),
    ],
)
def test_a_bad_shard_is_one_error_naming_file_and_field(
    edit: Any, message: str, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = copy(dataset, tmp_path)
    arrays = shard_arrays(directory)
    edit(arrays)
    rewrite_shard(directory, arrays)
    assert message in bc_error(directory, tmp_path, capsys)
    assert not (tmp_path / "bc" / "checkpoints").exists()  # nothing trained, nothing written


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("shards"), "field 'shards' is missing"),
        (lambda m: m.pop("level"), "field 'level' is missing"),
        (lambda m: m.update(shards={"file": "x"}), "field 'shards' is dict, expected list"),
        (lambda m: m.update(shards=[]), "lists 0 shards"),
        (lambda m: m["shards"][0].update(rows="12"), "field 'shards[0].rows' is '12', expected int"),
        (lambda m: m["shards"][0].update(file="../../etc/passwd"), "outside the dataset"),
        (lambda m: m["observation"].update(size=7), "field 'observation.size'/'actions'"),
        (lambda m: m.update(format=True), "dataset format True"),
    ],
)
def test_a_bad_manifest_is_one_error(
    edit: Any, message: str, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = copy(dataset, tmp_path)
    manifest = json.loads((directory / "manifest.json").read_text())
    edit(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    assert message in bc_error(directory, tmp_path, capsys)


def test_a_manifest_that_is_a_list_is_one_error(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = copy(dataset, tmp_path)
    (directory / "manifest.json").write_text("[1, 2]")
    assert "expected a JSON object, got list" in bc_error(directory, tmp_path, capsys)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(
    key=st.sampled_from(
        ["format", "level", "level_source", "level_hash", "observation", "actions", "shards"]
    ),
    value=JSON,
)
def test_fuzzed_manifest_fields_load_or_are_one_error(
    dataset: Path, tmp_path: Path, key: str, value: Any
) -> None:
    directory = copy(dataset, tmp_path, "fuzz")
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest[key] = value
    (directory / "manifest.json").write_text(json.dumps(manifest))
    try:
        load_dataset(directory)
    except DatasetError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600


@FUZZ
@given(
    field=st.sampled_from(FIELDS),
    change=st.sampled_from(["dtype", "rows", "value", "drop", "width"]),
    value=st.sampled_from([np.nan, np.inf, -1, 255, 2**40, 0.5]),
    dtype=st.sampled_from([np.float16, np.float64, np.int8, np.int64, np.uint8, np.bool_]),
)
def test_fuzzed_shards_load_or_are_one_error(
    dataset: Path, tmp_path: Path, field: str, change: str, value: float, dtype: Any
) -> None:
    directory = copy(dataset, tmp_path, "fuzz")
    arrays = shard_arrays(directory, 1)
    array = arrays[field]
    if change == "dtype":
        arrays[field] = array.astype(dtype)
    elif change == "rows":
        arrays[field] = np.concatenate([array, array[:1]])
    elif change == "value":
        flat = array.reshape(-1).copy()
        with np.errstate(all="ignore"):
            flat[len(flat) // 2] = np.array(value).astype(array.dtype)
        arrays[field] = flat.reshape(array.shape)
    elif change == "drop":
        del arrays[field]
    else:
        arrays[field] = array.reshape(len(array), -1)[:, :1] if array.ndim > 1 else array[:, None]
    rewrite_shard(directory, arrays, 1)
    try:
        data, _ = load_dataset(directory)
    except DatasetError as exc:
        assert "\n" not in str(exc) and "shard_00001.npz" in str(exc)
    else:  # what loads is what a learner can use
        assert np.isfinite(data["obs"].numpy()).all() and np.isfinite(data["reward"].numpy()).all()
        rows = data["action"].shape[0]
        assert bool(data["mask"][np.arange(rows), data["action"]].all())
