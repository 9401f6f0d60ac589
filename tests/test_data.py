"""Tests for gtn_search.data: real MNIST-family archives, fake CIFAR-10 and image folders.

Nothing is downloaded: MNIST and Fashion-MNIST come from the read-only shared archives (see
conftest.py), the other formats are generated in tmp folders from fixed seeds.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from gtn_search.data import (
    DATASETS,
    ENV_DATA_ROOT,
    DatasetTensors,
    clear_cache,
    load_dataset,
    resolve_data_root,
)
from gtn_search.errors import ConfigError, DatasetError

CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CIFAR_PER_BATCH = 20
CIFAR_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
]


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Point the cache folder into tmp, unset the data-root variable, start with an empty cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_DATA_ROOT, raising=False)
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def cifar_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``cifar-10-batches-py`` in the real pickle format, 20 images per batch.

    Channel c holds values in its own range so per-channel statistics differ.
    """
    # torchvision MD5-checks the batches (CIFAR10._check_integrity) and the meta file (the
    # module-level check_integrity in _load_meta); fake files cannot match the official sums.
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    ranges = [(0, 100), (100, 256), (0, 256)]
    for name in CIFAR_BATCHES:
        data = np.concatenate(
            [rng.integers(lo, hi, (CIFAR_PER_BATCH, 1024), dtype=np.uint8) for lo, hi in ranges], 1
        )
        labels = rng.integers(0, 10, CIFAR_PER_BATCH).tolist()
        # The official files are Python 2 pickles whose keys load as str under encoding="latin1".
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": labels}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CIFAR_NAMES}))
    return folder.parent


def _cifar_train_pixels(root: Path) -> np.ndarray:
    """The fake training images in file order, uint8 [N, 3, 32, 32]."""
    folder = root / "cifar-10-batches-py"
    batches = [pickle.loads((folder / name).read_bytes()) for name in CIFAR_BATCHES[:5]]
    return np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32)


def _write_images(
    folder: Path, classes: list[str], per_class: int, size: tuple[int, int], seed: int
) -> None:
    """Random RGB PNGs, ``per_class`` of width x height ``size`` in ``folder/<class>/``."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(folder / name / f"{i}.png")


def _denormalise(x: torch.Tensor, data: DatasetTensors) -> torch.Tensor:
    """Undo the normalisation: pixels back in [0, 1]."""
    shape = (1, -1, 1, 1)
    return x * torch.tensor(data.std).view(shape) + torch.tensor(data.mean).view(shape)


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Mode, size and mtime of ``folder`` and everything below it."""
    paths = [folder, *folder.rglob("*")]
    return {str(p): (p.stat().st_mode, p.stat().st_size, p.stat().st_mtime_ns) for p in paths}


def _row_hashes(x: torch.Tensor) -> set[int]:
    return {hash(row.numpy().tobytes()) for row in x}


# --- real MNIST-family archives ---------------------------------------------------------------


def test_mnist_shapes_labels_and_normalisation(mnist_root: Path) -> None:
    data = load_dataset("mnist", mnist_root, download=False)
    assert data.summary() == "mnist: train 50000, val 10000, test 10000, shape 1x28x28, 10 classes"
    assert data.train_x.shape == (50000, 1, 28, 28) and data.train_x.dtype == torch.float32
    assert data.val_x.shape == (10000, 1, 28, 28) and data.test_x.shape == (10000, 1, 28, 28)
    assert data.shape == (1, 28, 28)
    for labels in (data.train_y, data.val_y, data.test_y):
        assert labels.dtype == torch.int64
        assert labels.unique().tolist() == list(range(10))
    assert data.classes == tuple(str(i) for i in range(10)) and data.num_classes == 10
    assert abs(data.train_x.mean().item()) < 1e-4
    assert data.train_x.std().item() == pytest.approx(1.0, abs=1e-4)
    assert data.mean[0] == pytest.approx(0.1307, abs=2e-3)
    assert data.std[0] == pytest.approx(0.3081, abs=2e-3)


def test_mnist_split_is_the_documented_seeded_permutation(mnist_root: Path) -> None:
    data = load_dataset("mnist", mnist_root, download=False, split_seed=0)
    official = torchvision.datasets.MNIST(str(mnist_root), train=True)
    perm = torch.randperm(60000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(perm.sort().values, torch.arange(60000))  # so val and train are disjoint
    val_idx, train_idx = perm[:10000], perm[10000:]
    assert torch.equal(data.val_y, official.targets[val_idx])
    assert torch.equal(data.train_y, official.targets[train_idx])
    pixels = official.data.unsqueeze(1).float() / 255
    assert torch.allclose(_denormalise(data.val_x, data), pixels[val_idx], atol=1e-5)
    train_part = _denormalise(data.train_x[:2000], data)
    assert torch.allclose(train_part, pixels[train_idx[:2000]], atol=1e-5)

    clear_cache()
    again = load_dataset("mnist", mnist_root, download=False, split_seed=0)
    assert again is not data
    assert torch.equal(again.val_x, data.val_x)
    assert again.mean == data.mean and again.std == data.std
    other = load_dataset("mnist", mnist_root, download=False, split_seed=1)
    assert not torch.equal(other.val_y, data.val_y)
    test_pixels = _denormalise(data.test_x, data)
    assert torch.allclose(_denormalise(other.test_x, other), test_pixels, atol=1e-5)


def test_limit_keeps_the_first_examples_of_each_split(mnist_root: Path) -> None:
    full = load_dataset("mnist", mnist_root, download=False)
    small = load_dataset("mnist", mnist_root, download=False, limit=100)
    assert small.summary() == "mnist: train 100, val 100, test 100, shape 1x28x28, 10 classes"
    assert torch.equal(small.train_x, full.train_x[:100])
    assert torch.equal(small.val_y, full.val_y[:100])
    assert torch.equal(small.test_x, full.test_x[:100])
    assert small.mean == full.mean and small.std == full.std


def test_fashion_mnist_has_torchvision_class_names(mnist_root: Path, shared_data_dir: Path) -> None:
    if not (shared_data_dir / "FashionMNIST" / "raw").is_dir():
        pytest.skip(f"no Fashion-MNIST archives in {shared_data_dir / 'FashionMNIST' / 'raw'}")
    data = load_dataset("Fashion-MNIST", mnist_root, download=False, limit=50)
    assert data.name == "fashion_mnist" and data.shape == (1, 28, 28)
    assert data.classes[0] == "T-shirt/top"
    assert data.classes == tuple(torchvision.datasets.FashionMNIST.classes)
    assert data.num_classes == 10


def test_read_only_root_is_extracted_into_the_cache_mirror(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    source = shared_data_dir / "MNIST" / "raw"
    if not source.is_dir():
        pytest.skip(f"no MNIST archives in {source}")
    read_only = tmp_path / "read_only"
    raw = read_only / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for archive in source.glob("*.gz"):
        shutil.copyfile(archive, raw / archive.name)
        (raw / archive.name).chmod(0o444)
    for folder in (raw, raw.parent, read_only):
        folder.chmod(0o555)
    try:
        before = _snapshot(read_only)
        data = load_dataset("mnist", read_only, download=False, limit=5)
        assert _snapshot(read_only) == before
    finally:
        for folder in (read_only, raw.parent, raw):
            folder.chmod(0o755)
    assert data.summary() == "mnist: train 5, val 5, test 5, shape 1x28x28, 10 classes"
    mirror = tmp_path / "cache" / "gtn-search" / "data" / "MNIST" / "raw"
    link = mirror / "train-images-idx3-ubyte.gz"
    assert link.is_symlink() and link.resolve() == (raw / link.name).resolve()
    assert (mirror / "train-images-idx3-ubyte").is_file()


def test_missing_dataset_names_expected_files_and_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GTN_SEARCH_OFFLINE")  # the suite runs offline; this is the message of a normal run
    root = tmp_path / "empty"
    with pytest.raises(DatasetError) as caught:
        load_dataset("mnist", root, download=False)
    message = str(caught.value)
    assert str(root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz") in message
    assert "--data-root" in message and ENV_DATA_ROOT in message and "allow download" in message
    assert "\n" not in message and caught.value.__suppress_context__
    assert not root.exists()


def test_corrupt_archive_is_a_dataset_error(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not a gzip file")
    with pytest.raises(DatasetError, match="corrupt"):
        load_dataset("mnist", tmp_path, download=True)


# --- fake CIFAR-10 ----------------------------------------------------------------------------


def test_cifar10_layout_split_and_per_channel_normalisation(cifar_root: Path) -> None:
    data = load_dataset("cifar10", cifar_root, download=False, val_size=10)
    assert data.summary() == "cifar10: train 90, val 10, test 20, shape 3x32x32, 10 classes"
    assert data.classes == tuple(CIFAR_NAMES)
    per_channel = data.train_x.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_channel.std(1, unbiased=False), torch.ones(3), atol=1e-4)
    assert data.mean[0] < 0.25 < data.mean[2] < 0.6 < data.mean[1]

    pixels = torch.from_numpy(_cifar_train_pixels(cifar_root)).float() / 255
    perm = torch.randperm(100, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(_denormalise(data.val_x, data), pixels[perm[:10]], atol=1e-5)
    train_rows = _row_hashes(data.train_x)
    assert len(train_rows) == 90 and not train_rows & _row_hashes(data.val_x)


@pytest.mark.parametrize("val_size", [0, 100])
def test_val_size_out_of_range(cifar_root: Path, val_size: int) -> None:
    expected = rf"val_size={val_size} is out of range.*between 1 and 99"
    with pytest.raises(ConfigError, match=expected):
        load_dataset("cifar10", cifar_root, download=False, val_size=val_size)


def test_default_val_size_too_large_for_a_tiny_dataset(cifar_root: Path) -> None:
    with pytest.raises(ConfigError, match=r"val_size=5000 \(the default for cifar10\)"):
        load_dataset("cifar10", cifar_root, download=False)


# --- image folders ----------------------------------------------------------------------------


def test_imagefolder_resizes_and_converts_to_grayscale(tmp_path: Path) -> None:
    _write_images(tmp_path / "train", ["cat", "dog", "owl"], 4, (12, 12), seed=1)
    _write_images(tmp_path / "test", ["cat", "dog", "owl"], 2, (12, 12), seed=2)
    rgb = load_dataset("imagefolder", tmp_path)
    assert rgb.summary() == "imagefolder: train 11, val 1, test 6, shape 3x12x12, 3 classes"
    assert rgb.classes == ("cat", "dog", "owl") and rgb.test_y.tolist() == [0, 0, 1, 1, 2, 2]
    gray = load_dataset("image-folder", tmp_path, image_size=8, channels=1, val_size=3)
    assert gray.summary() == "imagefolder: train 9, val 3, test 6, shape 1x8x8, 3 classes"
    assert abs(gray.train_x.mean().item()) < 1e-5


def test_imagefolder_without_test_holds_out_a_test_split(tmp_path: Path) -> None:
    _write_images(tmp_path / "train", ["a", "b"], 10, (6, 6), seed=3)
    data = load_dataset("imagefolder", tmp_path, image_size=4)
    assert data.test_held_out
    assert data.summary() == (
        "imagefolder: train 16, val 2, test 2 (held out from train: no test/ folder), "
        "shape 3x4x4, 2 classes"
    )


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no training folder"):
        load_dataset("imagefolder", tmp_path)
    _write_images(tmp_path / "train", ["a"], 3, (6, 4), seed=4)
    with pytest.raises(ConfigError, match="not square"):
        load_dataset("imagefolder", tmp_path)
    with pytest.raises(ConfigError, match="channels=2"):
        load_dataset("imagefolder", tmp_path, channels=2)


# --- names, options, roots and cache ---------------------------------------------------------


def test_unknown_dataset_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match="did you mean 'mnist'"):
        load_dataset("mnsit")


def test_shape_options_apply_to_imagefolder_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="image_size and channels apply only"):
        load_dataset("mnist", tmp_path, image_size=32)


def test_cache_returns_the_same_object_for_the_same_arguments(cifar_root: Path) -> None:
    first = load_dataset("cifar10", cifar_root, download=False, val_size=10)
    assert load_dataset("CIFAR-10", str(cifar_root), download=False, val_size=10) is first
    assert load_dataset("cifar10", cifar_root, download=False, val_size=11) is not first
    clear_cache()
    assert load_dataset("cifar10", cifar_root, download=False, val_size=10) is not first


def test_resolve_data_root_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_data_root() == tmp_path / "cache" / "gtn-search" / "data"
    monkeypatch.setenv(ENV_DATA_ROOT, str(tmp_path / "from_env"))
    assert resolve_data_root() == tmp_path / "from_env"
    assert resolve_data_root(tmp_path / "explicit") == tmp_path / "explicit"


def test_dataset_names() -> None:
    assert DATASETS == (
        "mnist", "fashion_mnist", "kmnist", "cifar10", "cifar100", "svhn", "imagefolder"
    )


def test_torchvision_is_imported_only_to_read_a_dataset() -> None:
    """Importing torchvision imports torch's compiler (seconds); a process that reads no dataset (a
    search with the synthetic evaluator, ``show``, ``export``) does not pay it."""
    import subprocess
    import sys

    code = ("import sys, gtn_search.runner, gtn_search.cli.search, gtn_search.compare.run, gtn_search.final_train, "
            "gtn_search.evaluators, gtn_search.data\n"
            "print('torchvision' in sys.modules)\n"
            "gtn_search.data._builtin('fashion_mnist')\n"
            "print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
