"""Image-classification datasets as normalised in-memory tensors, loaded once per process.

:func:`load_dataset` reads a dataset through torchvision, splits the official training set into a
training and a validation part with a seeded permutation, scales pixels to [0, 1] and normalises
every split per channel with the mean/std of the training part. Nothing here iterates over
minibatches; the result is plain float32 NCHW tensors that the rest of gtn-search slices itself.

Data roots: an explicit argument wins over ``$GTN_SEARCH_DATA``, which wins over the cache folder
``$XDG_CACHE_HOME/gtn-search/data`` (``~/.cache/gtn-search/data``). A root may be read-only and hold
only the official archives: they are then extracted into a writable mirror in the cache folder.
Every user-caused failure (missing, undownloadable or corrupt data, bad options) is a
:class:`~gtn_search.errors.GTNSearchError` with a one-line message naming the files and the fix.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from gtn_search.errors import ConfigError, DatasetError, unknown_name

if TYPE_CHECKING:
    from torchvision import datasets as tvd

DATASETS: tuple[str, ...] = (
    "mnist",
    "fashion_mnist",
    "kmnist",
    "cifar10",
    "cifar100",
    "svhn",
    "imagefolder",
)

#: Environment variable naming the data root when no explicit root is given.
ENV_DATA_ROOT = "GTN_SEARCH_DATA"
#: Environment variable that, when set to anything but "" or "0", forbids every download.
ENV_OFFLINE = "GTN_SEARCH_OFFLINE"

_DIGITS = tuple(str(i) for i in range(10))


@dataclass(frozen=True)
class DatasetTensors:
    """One dataset in memory: float32 NCHW images normalised per channel, int64 labels.

    ``val_*`` is held out from the official training set; ``test_*`` is the official test set
    (for an image folder without ``test/``, a second part held out from ``train/``, flagged by
    ``test_held_out``). ``mean``/``std`` are the per-channel statistics (pixels in [0, 1]) of the
    whole training part, used to normalise all three splits. The tensors are shared through the
    in-process cache: treat them as read-only.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    classes: tuple[str, ...]
    test_held_out: bool = False

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one image, ``(C, H, W)``."""
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)

    def to(self, device: torch.device) -> DatasetTensors:
        """The same dataset with its tensors on ``device`` (``self`` if they are there already)."""
        if self.train_x.device == device:
            return self
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return dataclasses.replace(self, **moved)

    def summary(self) -> str:
        """One line with split sizes, image shape and class count, for logs and the CLI."""
        held = " (held out from train: no test/ folder)" if self.test_held_out else ""
        c, h, w = self.shape
        return (
            f"{self.name}: train {len(self.train_y)}, val {len(self.val_y)}, "
            f"test {len(self.test_y)}{held}, shape {c}x{h}x{w}, {self.num_classes} classes"
        )


@dataclass(frozen=True)
class _Builtin:
    """How a torchvision dataset is opened, and the files it needs relative to the data root."""

    tv_class: type
    archives: tuple[tuple[str, str], ...]  # (path, md5) of the archives torchvision extracts
    extracted: tuple[str, ...]  # the files torchvision reads once everything is extracted
    classes: tuple[str, ...] | None = None  # fixed class names; None: take torchvision's


@dataclass(frozen=True)
class _Raw:
    """Unnormalised uint8 NCHW images and int64 labels as read from disk; test may be absent."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    classes: tuple[str, ...]


def _mnist_like(cls: type, classes: tuple[str, ...] | None = None) -> _Builtin:
    raw = f"{cls.__name__}/raw"
    return _Builtin(
        cls,
        tuple((f"{raw}/{file}", md5) for file, md5 in cls.resources),
        tuple(f"{raw}/{file.removesuffix('.gz')}" for file, _ in cls.resources),
        classes,
    )


def _cifar(cls: type) -> _Builtin:
    files = [file for file, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return _Builtin(
        cls,
        ((cls.filename, cls.tgz_md5),),
        tuple(f"{cls.base_folder}/{file}" for file in files),
    )


#: The torchvision built-ins and their default validation sizes (the rest of a spec, :func:`_builtin`,
#: needs torchvision).
_BUILTIN_VAL_SIZES: dict[str, int] = {"mnist": 10_000, "fashion_mnist": 10_000, "kmnist": 10_000, "cifar10": 5_000,
                                      "cifar100": 5_000, "svhn": 5_000}


def _torchvision_datasets() -> Any:
    """``torchvision.datasets``, imported on first use: importing torchvision takes seconds (it
    imports torch's compiler), which processes that read no dataset should not pay."""
    from torchvision import datasets

    return datasets


@functools.cache
def _builtin(name: str) -> _Builtin:
    """The spec of the torchvision built-in ``name`` (a key of :data:`_BUILTIN_VAL_SIZES`)."""
    tvd = _torchvision_datasets()
    if name == "mnist":
        return _mnist_like(tvd.MNIST, _DIGITS)
    if name == "fashion_mnist":
        return _mnist_like(tvd.FashionMNIST)
    if name == "kmnist":
        return _mnist_like(tvd.KMNIST)
    if name == "cifar10":
        return _cifar(tvd.CIFAR10)
    if name == "cifar100":
        return _cifar(tvd.CIFAR100)
    if name == "svhn":
        return _Builtin(tvd.SVHN, (), tuple(tvd.SVHN.split_list[s][1] for s in ("train", "test")), _DIGITS)
    raise KeyError(name)


_CACHE: dict[tuple[Any, ...], DatasetTensors] = {}


def clear_cache() -> None:
    """Forget every dataset loaded in this process (frees the memory; next load reads disk)."""
    _CACHE.clear()


def _cache_data_dir() -> Path:
    """``$XDG_CACHE_HOME/gtn-search/data``, or ``~/.cache/gtn-search/data`` without it."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gtn-search" / "data"


def offline() -> bool:
    """Whether ``$GTN_SEARCH_OFFLINE`` forbids downloads (clusters without network, the test suite)."""
    return os.environ.get(ENV_OFFLINE, "") not in ("", "0")


def resolve_data_root(data_root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: explicit argument > ``$GTN_SEARCH_DATA`` > ``~/.cache/gtn-search/data``.

    The last one honours ``$XDG_CACHE_HOME``. Empty strings count as unset.
    """
    chosen = os.fspath(data_root) if data_root is not None else ""
    chosen = chosen or os.environ.get(ENV_DATA_ROOT, "")
    if not chosen:
        return _cache_data_dir()
    return Path(chosen).expanduser().absolute()


def _canonical_name(name: str) -> str:
    """Map ``FashionMNIST``, ``fashion-mnist``, ``CIFAR-10`` ... to the names in DATASETS."""
    squeezed = re.sub(r"[\s_\-]", "", str(name).lower())
    for known in DATASETS:
        if known.replace("_", "") == squeezed:
            return known
    raise unknown_name("dataset", name, DATASETS)


def load_dataset(
    name: str,
    data_root: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    val_size: int | None = None,
    split_seed: int = 0,
    image_size: int | None = None,
    channels: int | None = None,
    limit: int | None = None,
) -> DatasetTensors:
    """Load ``name`` as normalised tensors, once per process (later calls hit a cache).

    Split: ``torch.randperm`` over the official training set with
    ``torch.Generator().manual_seed(split_seed)``; the first ``val_size`` indices form the
    validation part, the rest the training part (for an image folder without ``test/``, the next
    ``val``-default indices form the test part). ``val_size`` defaults to 10 000 for the MNIST
    family, 5 000 for CIFAR/SVHN and 10 % of the images for ``imagefolder``.

    ``download=False`` (or ``$GTN_SEARCH_OFFLINE=1``) forbids network access; archives already
    under the root are still extracted. ``image_size`` and ``channels`` (1 or 3) apply to ``imagefolder`` only. ``limit``
    keeps the first ``limit`` examples of each split after splitting; mean/std still come from
    the whole training part so that smoke runs see the same normalisation as full runs.
    """
    canonical = _canonical_name(name)
    _check_options(canonical, image_size, channels, limit)
    root = resolve_data_root(data_root)
    # download is not part of the key: it changes how files are fetched, never the result.
    key = (canonical, str(root), val_size, split_seed, image_size, channels, limit)
    if key not in _CACHE:
        if canonical == "imagefolder":
            raw = _read_imagefolder(root, image_size, channels or 3)
        else:
            raw = _read_builtin(canonical, root, download and not offline())
        _CACHE[key] = _assemble(canonical, raw, val_size, split_seed, limit)
    return _CACHE[key]


def _check_options(
    name: str, image_size: int | None, channels: int | None, limit: int | None
) -> None:
    """Reject option values that cannot make sense before touching the disk."""
    if name != "imagefolder" and (image_size is not None or channels is not None):
        raise ConfigError(
            f"{name}: image_size and channels apply only to the 'imagefolder' dataset; "
            f"{name} has a fixed image shape"
        )
    if image_size is not None and image_size < 1:
        raise ConfigError(f"image_size={image_size} must be a positive number of pixels")
    if channels is not None and channels not in (1, 3):
        raise ConfigError(f"channels={channels} must be 1 (grayscale) or 3 (RGB)")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit={limit} must be at least 1 (or None for no limit)")


# --- splitting and normalisation ---------------------------------------------------------------


def _assemble(
    name: str, raw: _Raw, val_size: int | None, split_seed: int, limit: int | None
) -> DatasetTensors:
    """Split, compute training statistics, apply ``limit`` and normalise."""
    n = raw.train_x.shape[0]
    default_val = _BUILTIN_VAL_SIZES.get(name, max(1, n // 10))
    held_out = raw.test_x is None
    n_test = default_val if held_out else 0
    n_val = default_val if val_size is None else val_size
    _check_val_size(name, n_val, val_size is None, n, n_test)

    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_idx, test_idx = perm[:n_val], perm[n_val : n_val + n_test]
    train_idx = perm[n_val + n_test :]
    train_x, train_y = raw.train_x[train_idx], raw.train_y[train_idx]
    if held_out:
        test_x, test_y = raw.train_x[test_idx], raw.train_y[test_idx]
    else:
        test_x, test_y = raw.test_x, raw.test_y
    mean, std = _channel_stats(train_x)

    def prepare(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _normalise(x[:limit], mean, std), y[:limit].to(torch.int64)

    train = prepare(train_x, train_y)
    val = prepare(raw.train_x[val_idx], raw.train_y[val_idx])
    test = prepare(test_x, test_y)
    return DatasetTensors(
        name, *train, *val, *test, mean, std, len(raw.classes), raw.classes, held_out
    )


def _check_val_size(name: str, n_val: int, is_default: bool, n: int, n_test: int) -> None:
    """``val_size`` must leave at least one training image (after a held-out test part)."""
    high = n - n_test - 1
    if 1 <= n_val <= high:
        return
    default = f" (the default for {name})" if is_default else ""
    held = f" minus {n_test} held out for testing" if n_test else ""
    raise ConfigError(
        f"{name}: val_size={n_val}{default} is out of range: it must be between 1 and {high} "
        f"({n} training images{held}, at least one left for training)"
    )


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean/std of uint8 images scaled to [0, 1], from pixel-value counts."""
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1), minlength=256).to(torch.float64)
        total = counts.sum()
        mean = (counts * values).sum() / total
        std = ((counts * (values - mean) ** 2).sum() / total).sqrt()
        means.append(float(mean))
        stds.append(float(std) or 1.0)  # a constant channel is only centred, not divided by 0
    return tuple(means), tuple(stds)


def _normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 NCHW -> float32 ``(x / 255 - mean) / std`` per channel."""
    shape = (1, -1, 1, 1)
    m = torch.tensor(mean, dtype=torch.float32).view(shape)
    s = torch.tensor(std, dtype=torch.float32).view(shape)
    return (x.to(torch.float32) / 255 - m) / s


# --- torchvision built-ins ---------------------------------------------------------------------


def _read_builtin(name: str, root: Path, download: bool) -> _Raw:
    """Read train and test arrays of a torchvision dataset; every failure is a DatasetError."""
    spec = _builtin(name)
    source = _source_root(name, spec, root)
    # Verified local archives need only extraction, which torchvision does in its download step.
    may_fetch = download or _archives_present(spec, source)
    try:
        train = _open_split(spec, source, train=True, download=may_fetch)
        test = _open_split(spec, source, train=False, download=may_fetch)
        train_x, train_y = _arrays(train)
        test_x, test_y = _arrays(test)
    except Exception as exc:  # torchvision raises anything from URLError to UnpicklingError  # noqa: BLE001
        raise _load_error(name, spec, root, source, download, exc) from None
    classes = spec.classes or tuple(str(c) for c in train.classes)
    return _Raw(train_x, train_y, test_x, test_y, classes)


def _open_split(spec: _Builtin, root: Path, *, train: bool, download: bool) -> Any:
    tvd = _torchvision_datasets()
    if spec.tv_class is tvd.SVHN:
        return tvd.SVHN(str(root), split="train" if train else "test", download=download)
    return spec.tv_class(str(root), train=train, download=download)


def _arrays(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NCHW images and int64 labels straight from a dataset's arrays (no PIL round trip)."""
    tvd = _torchvision_datasets()
    if isinstance(ds, tvd.SVHN):  # .data is already [N, 3, 32, 32]
        x, y = torch.from_numpy(ds.data), torch.from_numpy(ds.labels)
    elif isinstance(ds, tvd.CIFAR10):  # CIFAR100 too; .data is [N, 32, 32, 3]
        x, y = torch.from_numpy(ds.data).permute(0, 3, 1, 2), torch.tensor(ds.targets)
    else:  # MNIST family: .data is [N, 28, 28]
        x, y = ds.data.unsqueeze(1), ds.targets
    return x.contiguous(), y.to(torch.int64)


def _archives_present(spec: _Builtin, root: Path) -> bool:
    return bool(spec.archives) and all((root / path).is_file() for path, _ in spec.archives)


def _source_root(name: str, spec: _Builtin, root: Path) -> Path:
    """The folder torchvision reads: ``root``, or a writable mirror when ``root`` is read-only.

    Present archives are MD5-checked first, so a corrupt one is reported instead of being
    "repaired" by a download attempt.
    """
    if all((root / path).is_file() for path in spec.extracted):
        return root
    for path, md5 in spec.archives:
        archive = root / path
        if archive.is_file() and not _torchvision_datasets().utils.check_integrity(str(archive), md5):
            raise DatasetError(
                f"dataset '{name}': archive {archive} is corrupt (MD5 is not {md5}); replace it "
                f"with the official file, or delete it and allow download"
            )
    folders = {(root / path).parent for path, _ in spec.archives} | {
        (root / path).parent for path in spec.extracted
    }
    if all(_is_writable(folder) for folder in folders):
        return root
    return _writable_mirror(root, [path for path, _ in spec.archives])


def _is_writable(folder: Path) -> bool:
    """Whether files may be created in ``folder`` (or its nearest existing ancestor).

    Permission bits count even for root, who could write anyway: a data folder made read-only
    with chmod (say a shared one) is never written to.
    """
    while not folder.exists():
        folder = folder.parent
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def _writable_mirror(root: Path, archives: Sequence[str]) -> Path:
    """Mirror read-only ``root`` in the cache folder, with symlinks to its archives; return it.

    torchvision extracts archives next to themselves (e.g. ``MNIST/raw/*.gz`` into
    ``MNIST/raw/``), which a read-only data folder forbids. The mirror keeps the same relative
    paths, so torchvision extracts (or downloads what is missing) there, copying nothing and
    never touching ``root``. Existing files in the mirror are kept; stale symlinks are replaced.
    """
    mirror = _cache_data_dir()
    try:
        for path in archives:
            source, link = root / path, mirror / path
            if not source.is_file() or link.exists():
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():  # dangling: its target moved away
                link.unlink()
            link.symlink_to(source.resolve())
    except OSError as exc:
        raise DatasetError(
            f"{root} is read-only and the writable mirror {mirror} cannot be created "
            f"({exc.strerror or exc}); set XDG_CACHE_HOME to a writable folder, or extract the "
            f"archives into a writable data root (--data-root / ${ENV_DATA_ROOT})"
        ) from None
    return mirror


def _load_error(
    name: str, spec: _Builtin, root: Path, source: Path, download: bool, exc: Exception
) -> DatasetError:
    """Turn a torchvision failure into one message: what is missing or broken, and the fix."""
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    anything_there = any((source / path).exists() for path in spec.extracted) or any(
        (source / path).exists() for path, _ in spec.archives
    )
    where = f"{root}" if source == root else f"{root} (extracting into the mirror {source})"
    if anything_there:
        return DatasetError(
            f"dataset '{name}' under {where} could not be read ({type(exc).__name__}: {reason}); "
            f"the files may be corrupt or incomplete: replace them with the official ones"
        )
    if spec.archives:
        expected = ", ".join(str(root / path) for path, _ in spec.archives)
        folders = sorted({str((root / path).parent) for path in spec.extracted})
        expected += f" (or their extracted files in {', '.join(folders)})"
    else:
        expected = ", ".join(str(root / path) for path in spec.extracted)
    off = f"${ENV_OFFLINE} is set" if offline() else "download=False"
    fetch = f"download failed ({reason})" if download else f"downloading is off ({off})"
    allow = "" if download else (f", or unset ${ENV_OFFLINE}" if offline() else ", or allow download")
    return DatasetError(
        f"dataset '{name}' not found in {root}: expected {expected}; {fetch}; fix: put the files "
        f"there, or point --data-root or ${ENV_DATA_ROOT} at a folder that has them{allow}"
    )


# --- image folders -----------------------------------------------------------------------------


def _read_imagefolder(root: Path, image_size: int | None, channels: int) -> _Raw:
    """Read ``root/train/<class>/*`` (and ``root/test/<class>/*`` when present) as uint8 tensors."""
    train_dir, test_dir = root / "train", root / "test"
    if not train_dir.is_dir():
        raise DatasetError(
            f"imagefolder: no training folder {train_dir}; expected {train_dir}/<class>/*.png|jpg "
            f"(and optionally {test_dir}/<class>/...); point --data-root or ${ENV_DATA_ROOT} at "
            f"the folder that holds train/"
        )
    train = _image_folder(train_dir)
    size = image_size or _first_image_size(train)
    from torchvision import transforms

    to_tensor = transforms.Compose([transforms.Resize((size, size)), transforms.PILToTensor()])
    mode = "L" if channels == 1 else "RGB"
    train_x, train_y = _read_images(train, lambda img: to_tensor(img.convert(mode)))
    if not test_dir.is_dir():
        return _Raw(train_x, train_y, None, None, tuple(train.classes))
    test = _image_folder(test_dir)
    if test.classes != train.classes:
        raise DatasetError(
            f"imagefolder: class folders differ between {train_dir} ({', '.join(train.classes)}) "
            f"and {test_dir} ({', '.join(test.classes)}); both need the same class folders"
        )
    test_x, test_y = _read_images(test, lambda img: to_tensor(img.convert(mode)))
    return _Raw(train_x, train_y, test_x, test_y, tuple(train.classes))


def _image_folder(folder: Path) -> tvd.ImageFolder:
    try:
        return _torchvision_datasets().ImageFolder(str(folder))
    except OSError as exc:  # FileNotFoundError when there are no class folders or images
        raise DatasetError(
            f"imagefolder: {folder} has no usable images ({exc}); expected "
            f"{folder}/<class>/*.png|jpg, one sub-folder per class"
        ) from None


def _open_image(ds: tvd.ImageFolder, path: str) -> Image.Image:
    try:
        return ds.loader(path)
    except OSError as exc:
        raise DatasetError(f"imagefolder: cannot read image {path} ({exc})") from None


def _first_image_size(ds: tvd.ImageFolder) -> int:
    """Side of the first (square) image, the default ``image_size``."""
    path = ds.samples[0][0]
    width, height = _open_image(ds, path).size
    if width != height:
        raise ConfigError(
            f"imagefolder: the first image {path} is {width}x{height}, not square; pass "
            f"image_size to resize every image to image_size x image_size"
        )
    return width


def _read_images(
    ds: tvd.ImageFolder, convert: Callable[[Image.Image], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    images = [convert(_open_image(ds, path)) for path, _ in ds.samples]
    labels = torch.tensor([label for _, label in ds.samples], dtype=torch.int64)
    return torch.stack(images), labels
