"""The model zoo: named architectures with metadata, pretrained weights and TFLite files, offline.

One folder per entry under ``zoo/`` (or ``$NSE_TF_ZOO``): ``network.json`` (the architecture),
``metadata.json`` (dataset, input shape, preprocessing, MACs, params, measured top-1, the command
that produced it, sha256 of every file), and where trained ``model.weights.h5``, ``float32.tflite``
and ``int8.tflite``. Loading builds the network from its JSON and reads an HDF5 weights file after
checking its sha256: no code from a file is ever executed. An entry whose metadata has
``"flip_average": true`` is its network run on the image and its mirror, logits averaged
(``nse_tf.nets.flip_average``): its MACs, top-1 and TFLite files are those of the two-pass model.

An entry named ``<recipe>-s<k>`` is seed k of a comparison's recipe (``nse-fmnist-latency-s0``): the rule is the
name, so new seeds need no registration. A user picks a recipe, not a seed: ``listed_models`` lists the recipe's
name instead of its seeds unless asked, and that name loads its lowest seed with weights (unless an entry has
it: no seed is chosen by a figure measured on the test split); each seed still loads by its name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from typing import Any

from nse_tf.space import limits
from nse_tf.space.architecture import NetworkSpec
from nse_tf.utils import state_files
from nse_tf.utils.atomic import previous_path

ZOO_ENV = "NSE_TF_ZOO"
METADATA_NAME = "metadata.json"
NETWORK_NAME = "network.json"
WEIGHTS_NAME = "model.weights.h5"
ALIASES_NAME = "aliases.json"
TFLITE_VARIANTS = ("float32", "int8", "int8_qat")  # int8_qat: tools/qat.py, where it ran
REQUIRED_KEYS = ("name", "dataset", "input_shape", "num_classes", "preprocessing", "macs", "params", "top1",
                 "command", "files")
ENTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SEED_NAME = re.compile(r"(?P<recipe>[A-Za-z0-9][A-Za-z0-9_.-]*)-s(?P<seed>[0-9]+)")  # seed k of a recipe
SHA256 = re.compile(r"[0-9a-f]{64}")


class ZooError(ValueError):
    """An unknown entry, a missing or tampered file, or a request the entry cannot serve."""


class ZooSizeError(ZooError, limits.SizeLimitError):
    """An entry's network, rebuilt for another task, beyond the limits of ``nse_tf.space.limits``."""


def check_entry_name(name: str) -> str:
    """``name`` if it can only mean a folder directly under the zoo (letters, digits, ``_.-``, no ``..``)."""
    if not isinstance(name, str) or not ENTRY_NAME.fullmatch(name) or ".." in name:
        raise ZooError(f"{name!r} is not a zoo entry name: use letters, digits, '_', '.' and '-' (no path "
                       "separators, no '..', not starting with '.' or '-')")
    return name


def zoo_dir() -> str:
    """``$NSE_TF_ZOO`` if set, else the repository's ``zoo/`` folder."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # nse_tf/
    default = os.path.join(os.path.dirname(package), "zoo")
    return os.environ.get(ZOO_ENV, default)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class EntryConfig:
    """The typed core of an entry's ``metadata.json``: what loading and evaluating it rely on. The rest of the
    metadata (training record, exports, quick check) stays in ``ZooEntry.metadata``."""

    name: str
    dataset: str | None
    input_shape: tuple[int, int, int]
    num_classes: int
    macs: int
    params: int
    top1: float | None
    command: str
    files: dict[str, str]
    flip_average: bool = False  # the entry is its network run on the image and its mirror, logits averaged
    weights_from: str | None = None  # another entry whose weights this one runs (a second config, one file)
    weights_sha256: str | None = None  # those weights' sha256 when this entry was measured

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], source: str) -> "EntryConfig":
        def field(key: str, kind: Any, optional: bool = False) -> Any:
            value = metadata.get(key)
            if value is None and optional:
                return None
            if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
                raise ZooError(f"{source}: field {key} must be {getattr(kind, '__name__', kind)}, got {value!r}")
            return value

        shape = field("input_shape", list)
        if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
            raise ZooError(f"{source}: field input_shape must be [height, width, channels], got {shape!r}")
        weights_from = field("weights_from", str, optional=True)
        weights_sha256 = field("weights_sha256", str, optional=True)
        if weights_from is not None:
            check_entry_name(weights_from)
            if weights_sha256 is None or not SHA256.fullmatch(weights_sha256):
                raise ZooError(f"{source}: field weights_sha256 must pin the sha256 of {weights_from}'s weights")
        return cls(name=field("name", str), dataset=field("dataset", str, optional=True),
                   input_shape=tuple(shape), num_classes=field("num_classes", int), macs=field("macs", int),
                   params=field("params", int), top1=field("top1", (int, float), optional=True),
                   command=field("command", str), files=dict(metadata["files"]),
                   flip_average=bool(field("flip_average", bool, optional=True)), weights_from=weights_from,
                   weights_sha256=weights_sha256)


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    name: str
    path: str
    metadata: dict[str, Any]
    config: EntryConfig

    @property
    def has_weights(self) -> bool:
        return WEIGHTS_NAME in self.config.files or self.config.weights_from is not None

    @property
    def flip_average(self) -> bool:
        """Made with ``make_zoo_entry.py --flip_average``: the entry is its network's two-pass model."""
        return self.config.flip_average

    def configure(self, model: Any) -> Any:
        """The entry's network as the entry runs it: the two-pass flip-averaged model where its config says so
        (the one place that decides; its MACs, top-1 and TFLite files are that model's)."""
        if not self.flip_average:
            return model
        from nse_tf.nets.flip_average import flip_average

        return flip_average(model)

    def weights_file(self) -> str:
        """The sha256-checked weights: the entry's own, or those of the entry it names in ``weights_from``
        (which must hold the same network)."""
        if self.config.weights_from is None:
            return self.file(WEIGHTS_NAME)
        source = get_entry(self.config.weights_from)
        if source.config.weights_from is not None:
            raise ZooError(f"zoo entry {self.name}: weights_from {source.name} itself borrows its weights")
        if source.config.files.get(NETWORK_NAME) != self.config.files[NETWORK_NAME]:
            raise ZooError(f"zoo entry {self.name}: weights_from {source.name} holds another network")
        if source.config.files.get(WEIGHTS_NAME) != self.config.weights_sha256:
            raise ZooError(f"zoo entry {self.name}: the weights of {source.name} changed since it was measured "
                           f"(sha256 {source.config.files.get(WEIGHTS_NAME)}, not {self.config.weights_sha256}); "
                           "rebuild it with tools/make_zoo_entry.py")
        return source.file(WEIGHTS_NAME)

    def file(self, filename: str) -> str:
        """Path of one of the entry's files after checking its sha256 against the metadata."""
        expected = self.metadata["files"].get(filename)
        if expected is None:
            raise ZooError(f"zoo entry {self.name} has no file {filename} (it has: "
                           f"{', '.join(sorted(self.metadata['files']))})")
        path = inside_entry(self.path, filename, f"zoo entry {self.name}")
        if not os.path.exists(path):
            raise ZooError(f"{path} is missing (listed in {self.name}'s metadata)")
        actual = sha256_file(path)
        if actual != expected:
            raise ZooError(f"{path}: sha256 {actual} does not match the metadata's {expected}; "
                           "the file is corrupt or was replaced, refusing to load it")
        return path

    def network_spec(self, check_size: bool = True) -> NetworkSpec:
        """The entry's network; one beyond the limits of ``nse_tf.space.limits`` is refused (an
        ``ArchitectureSizeError``) unless ``check_size`` is False."""
        return NetworkSpec.load(self.file(NETWORK_NAME), check_size=check_size)


def inside_entry(entry_path: str, filename: str, source: str) -> str:
    """The path of ``filename`` in an entry, if it names a file inside it: a relative name without ``..``, and
    no symlink (of the file or a folder on the way) leading out of the entry, as timm and Keras keep weights
    to the model's folder."""
    parts = filename.replace("\\", "/").split("/")
    if not filename or os.path.isabs(filename) or any(part in ("", ".", "..") for part in parts):
        raise ZooError(f"{source}: file {filename!r} is not a plain name inside the entry (no '..', no absolute "
                       "path); refusing it")
    path = os.path.join(entry_path, filename)
    root = os.path.realpath(entry_path)
    if os.path.commonpath([root, os.path.realpath(path)]) != root:
        raise ZooError(f"{source}: {filename} is a symlink to {os.path.realpath(path)}, outside the entry; "
                       "refusing it")
    return path


def _read_json(path: str, fix: str = "restore the entry's files or rerun tools/make_zoo_entry.py for it") -> Any:
    """A zoo file's JSON object (the guarded reader of state files: one ZooError line naming a damaged one)."""
    return state_files.read_json(path, fix, error=ZooError)


def aliases() -> dict[str, str]:
    """Old entry names -> current ones (``zoo/aliases.json``), so a renamed entry keeps loading by its old name."""
    path = os.path.join(zoo_dir(), ALIASES_NAME)
    if not os.path.exists(path):
        return {}
    data = _read_json(path, "restore it from the repository (it maps old entry names to current ones)")
    table = data.get("aliases") if isinstance(data, dict) else None
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
        raise ZooError(f"{path}: field aliases must map old names to entry names")
    return dict(table)


def seed_groups() -> dict[str, list[str]]:
    """Recipe name -> its seed entries (``<recipe>-s<k>``), by seed."""
    groups: dict[str, list[str]] = {}
    for name in list_models():
        if match := SEED_NAME.fullmatch(name):
            groups.setdefault(match["recipe"], []).append(name)
    return {recipe: sorted(seeds, key=lambda n: int(SEED_NAME.fullmatch(n)["seed"]))
            for recipe, seeds in groups.items()}


def default_seed(seeds: list[str]) -> str:
    """The seed a recipe's name loads: the lowest with weights (never the best on the test split: that would
    choose by the test images)."""
    return next((name for name in seeds if get_entry(name).has_weights), seeds[0])


def canonical_name(name: str) -> str:
    """The entry a name means: itself, what its alias points to, or a recipe's default seed."""
    name = aliases().get(name, name)
    if name in list_models():
        return name
    groups = seed_groups()
    return default_seed(groups[name]) if name in groups else name


def is_entry(name: str) -> bool:
    """Whether ``name`` names an entry (or an alias of one, or a recipe of seeds) of the zoo."""
    return name in list_models() or name in aliases() or name in seed_groups()


def listed_models(include_seeds: bool = False) -> list[str]:
    """What a user picks from, sorted: the entries but seeds, and each recipe of seeds once by its name (an
    entry of that name, else its default seed); with ``include_seeds`` the seeds too. Every name loads."""
    groups = seed_groups()
    seeds = {name for members in groups.values() for name in members}
    return sorted(set(list_models()) - (set() if include_seeds else seeds) | set(groups))


def list_models() -> list[str]:
    """Names of the zoo's entry folders, every seed included, sorted (aliases left out; ``listed_models``:
    what a user picks from)."""
    root = zoo_dir()
    if not os.path.isdir(root):
        return []
    # ENTRY_NAME leaves out the .staging-/.previous- folders of a write in progress (or interrupted)
    return sorted(d for d in os.listdir(root) if ENTRY_NAME.fullmatch(d) and ".." not in d
                  and os.path.exists(os.path.join(root, d, METADATA_NAME)))


def get_entry(name: str) -> ZooEntry:
    """The entry of ``name`` (or of the alias ``name``), its metadata checked."""
    name = canonical_name(check_entry_name(name))
    path = os.path.join(zoo_dir(), check_entry_name(name))
    meta_path = os.path.join(path, METADATA_NAME)
    if not os.path.exists(meta_path):
        if os.path.isdir(previous_path(path)):
            raise ZooError(f"zoo entry {name!r} is being replaced (or its replacement was interrupted): its previous "
                           f"files are in .previous-{name}; rerun tools/make_zoo_entry.py for it")
        raise ZooError(f"no zoo entry {name!r}; available: {', '.join(list_models()) or '(none)'}")
    inside_entry(path, METADATA_NAME, f"zoo entry {name}")
    metadata = _read_json(meta_path)
    if not isinstance(metadata, dict):
        raise ZooError(f"{meta_path}: holds a JSON {type(metadata).__name__}, not an object")
    missing = [k for k in REQUIRED_KEYS if k not in metadata]
    if missing:
        raise ZooError(f"{meta_path}: missing keys {missing}")
    files = metadata["files"]
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) and SHA256.fullmatch(v)
                                              for k, v in files.items()):
        raise ZooError(f"{meta_path}: field files must map each file name to its sha256 (64 hex digits), "
                       f"got {json.dumps(files)[:120]}")
    if NETWORK_NAME not in files:
        raise ZooError(f"{meta_path}: field files does not list {NETWORK_NAME}")
    for filename in files:
        inside_entry(path, filename, meta_path)
    return ZooEntry(name, path, metadata, EntryConfig.from_metadata(metadata, meta_path))


def metadata(name: str) -> dict[str, Any]:
    return dict(get_entry(name).metadata)


def load(name: str, weights: str | None = "pretrained", num_classes: int | None = None, *,
         input_shape: tuple[int, int, int] | None = None, include_top: bool = True, pooling: str | None = None,
         transfer: bool = False, check_size: bool = True) -> Any:
    """A Keras 3 model of zoo entry ``name``; it takes raw 0-255 pixels and returns logits.

    ``weights="pretrained"`` loads the entry's trained weights (an error where it has none);
    ``None`` gives a fresh initialisation. ``num_classes`` / ``input_shape`` rebuild the network for
    another task: another square input size keeps the pretrained weights (the network is fully convolutional
    up to global pooling); another class count or channel count needs ``weights=None``, as Keras
    Applications' ``weights="imagenet"`` does, unless ``transfer`` (what ``nse_tf.create_model(pretrained=True)``
    passes, as timm does): then every weight that fits loads, the classifier starts as a fresh model's, and
    the stem's kernel and the normalisation's mean/std are adapted to the channels
    (``nse_tf.nets.transfer``). ``include_top=False`` returns the backbone with ``pooling`` None, "avg" or
    "max" (without an entry's flip averaging, which averages logits). A network beyond the limits of
    ``nse_tf.space.limits`` (the entry's, or retargeted) is refused before anything is built unless
    ``check_size`` is False.
    """
    from nse_tf.nets.child import build_child
    from nse_tf.nets.transfer import CLASSIFIER, backbone, check_head, check_num_classes, retarget, transfer_weights

    if weights not in ("pretrained", None):
        raise ZooError(f"weights must be 'pretrained' or None, got {weights!r}")
    num_classes = check_num_classes(num_classes)
    check_head(include_top, pooling, num_classes)
    entry = get_entry(name)
    trained = entry.network_spec(check_size=check_size)
    try:
        spec = retarget(trained, num_classes, input_shape)
        if check_size and spec is not trained:
            spec.check_size()
    except limits.SizeLimitError as err:  # stays a SizeLimitError: a command line gives its own way to override
        raise err.within(name, ZooSizeError) from None
    except ValueError as err:
        raise ZooError(f"{name}: {err}") from None
    if weights == "pretrained" and not entry.has_weights:
        raise ZooError(f"{name} has no pretrained weights ({entry.metadata.get('weights_note', 'none were trained')});"
                       " use weights=None (pretrained=False)")
    space, before = spec.space, trained.space
    if weights == "pretrained" and not transfer:
        if space.num_classes != before.num_classes:
            raise ZooError(f"{name} was trained with {before.num_classes} classes; use weights=None for "
                           f"num_classes={space.num_classes}, or nse_tf.create_model({name!r}, pretrained=True, "
                           f"num_classes={space.num_classes}) to load every weight but the classifier")
        if space.input_channels != before.input_channels:
            raise ZooError(f"{name} was trained on {before.input_channels}-channel images; use weights=None for "
                           f"input_shape={tuple(input_shape)}, or nse_tf.create_model({name!r}, pretrained=True, "
                           f"input_shape=...) to adapt its first convolution")
    model = build_child(spec)
    if weights == "pretrained":
        if (space.num_classes, space.input_channels) == (before.num_classes, before.input_channels):
            model.load_weights(entry.weights_file())
        else:
            source = build_child(trained)
            source.load_weights(entry.weights_file())
            left = transfer_weights(source, model)
            if set(left) - {CLASSIFIER}:  # the same architecture: only the classifier may change shape
                raise ZooError(f"{name}: could not carry the weights of {', '.join(left)} over")
    return entry.configure(model) if include_top else backbone(model, pooling)


def tflite_path(name: str, variant: str = "int8") -> str:
    """Path of the entry's ``float32`` or ``int8`` TFLite file, sha256-checked."""
    if variant not in TFLITE_VARIANTS:
        raise ZooError(f"variant must be one of {', '.join(TFLITE_VARIANTS)}, got {variant!r}")
    return get_entry(name).file(f"{variant}.tflite")
