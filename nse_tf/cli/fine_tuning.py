"""What ``tools/qat.py`` and ``tools/prune.py`` share: the fine-tuning flags, the zoo entry they start from and
its tf_keras rebuild, and the one-line errors around the run. Nothing here imports TensorFlow before the flags
are known to be good."""

from __future__ import annotations

from typing import Any, Callable

from absl import flags

from nse_tf.train.qat import QatConfig  # numpy only: no TensorFlow import yet
from nse_tf.utils.cli import FlagError
from nse_tf.utils.settings import SettingError, flag_values, settings_of
from nse_tf.utils.settings import define_flags as define_setting_flags

F = flags.FLAGS


def define_flags() -> None:
    """The flags of a fine-tuning tool besides its own (``--run_dir`` and those of its method): the entry, the
    threads, and QatConfig's settings."""
    flags.DEFINE_string("model", None, "A zoo entry with trained weights.")
    define_setting_flags(settings_of(QatConfig))
    flags.DEFINE_integer("threads", 0, "TensorFlow CPU threads (0: TensorFlow's default).")


def trained_entry(verb: str) -> Any:
    """The ``--model`` zoo entry, which must hold trained weights of a single-pass network."""
    from nse_tf.zoo import registry as zoo

    if not F.model:
        raise FlagError("model", "is required")
    try:
        entry = zoo.get_entry(F.model)
    except zoo.ZooError as err:
        raise FlagError("model", str(err)) from None
    if not entry.has_weights:
        raise FlagError("model", f"zoo entry {entry.name} has no trained weights")
    if entry.flip_average:
        raise FlagError("model", f"{entry.name} is a flip-averaged configuration of "
                                 f"{entry.config.weights_from or 'its weights'}; {verb} the single-pass entry")
    return entry


def make_config(factory: type = QatConfig) -> Any:
    """``factory`` (QatConfig or a subclass) from its settings' flags; a refused value names its flag."""
    settings = settings_of(factory)
    try:
        return factory(**flag_values(settings, {name: F[name].value for name in F}))
    except SettingError as err:
        flag = next((s.flag() for s in settings if s.path == err.field), None)
        raise FlagError(flag.name if flag else "epochs", err.message) from None


def set_threads() -> None:
    from nse_tf.train.config import TrainError
    from nse_tf.train.device import set_cpu_threads

    try:
        set_cpu_threads(F.threads)
    except TrainError as err:
        raise FlagError("threads", str(err)) from None


def run_in(work: Callable[..., dict], *args: Any) -> dict:
    """``work(*args)``, its input errors as flag errors: the run directory holds another run, or the entry's
    dataset is missing or damaged."""
    from nse_tf.data.idx import DatasetError
    from nse_tf.train.config import TrainError

    try:
        return work(*args)
    except TrainError as err:
        raise FlagError("run_dir", str(err)) from None
    except DatasetError as err:
        raise FlagError("model", str(err)) from None


def starting_point(entry: Any) -> tuple[Any, Any, Any, dict]:
    """The entry's training recipe, its dataset, its network rebuilt with tf_keras layers holding the trained
    weights (large depthwise kernels tiled, as the TFLite files run them), and the ``source`` a fine-tuning run
    records (the entry, its weights' sha256 and, where it has tiles, the build's form)."""
    from nse_tf.data.arrays import load_arrays
    from nse_tf.train import qat
    from nse_tf.train.config import TrainConfig
    from nse_tf.zoo import registry as zoo

    recipe = TrainConfig.from_dict(entry.metadata["training"]["recipe"], source=f"{entry.name}'s metadata")
    data = load_arrays(entry.config.dataset, image_size=entry.metadata.get("image_size"))
    model = qat.tf_keras_copy(entry.network_spec(), zoo.load(entry.name, weights="pretrained"))
    source = {"entry": entry.name, "weights_sha256": zoo.sha256_file(entry.weights_file())}
    if any(layer.name.endswith("_conv_pad") for layer in model.layers):  # nets.layers.TiledDepthwise's padding
        source["large_depthwise"] = "tiled"  # a run of the plain-kernel build (before tiling) must not resume here
    return recipe, data, model, source


def calibration_images(data: Any, count: int) -> Any:
    """The int8 converter's calibration sample: ``count`` training images, the same draw for every tool."""
    import numpy as np

    return data.x_train[np.random.default_rng(0).permutation(len(data.x_train))[:count]]


def recorded_command(tool: str, argv: list[str]) -> str:
    """The command that rebuilds the result, without the flags that only say where and how fast it ran."""
    import shlex

    return f"python tools/{tool} " + shlex.join(a for a in argv if not a.startswith(("--run_dir", "--threads")))
