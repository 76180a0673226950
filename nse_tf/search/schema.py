"""The search's settings schema, in one table: every setting SearchConfig declares (its dataclasses' fields), the
space preset with the fields a flag overrides, and how this process runs. Each has its config.json path, default,
flag (per cost mode where the unit renames it: ``penalty.target`` is ``target_macs`` or ``target_ms``), when a
run may change it and its check; tools/search.py defines its flags from here and turns a ``SettingError``'s
field into its flag here. TensorFlow-free."""

from __future__ import annotations

from nse_tf.search.config import SearchConfig
from nse_tf.utils.settings import ABSENT, ANY_TIME, END_OF_ROUND, Setting, Spec, option, settings_of


def _space(field: str, kind: str, help: str) -> Setting:
    return Setting(f"space.{field}", None, Spec(help, kind))


# The space: a preset, and the fields a flag overrides (None: the preset's); the others come from the preset.
SPACE_SETTINGS = (
    Setting("space", "small", Spec("Preset macro space: small, imagenet_mac, imagenet_latency.", "string")),
    _space("pool", "string", "Operation pool: mb19, mac27, mac72, or comma-separated op names."),
    _space("layout", "string", "NR, NER, or a transition string such as RRRERE."),
    _space("counts", "list", "N-cell counts per stage, e.g. 1,3,3,3,3,3."),
    _space("channels", "list", "Stem channels, then one per R/E cell."),
    _space("scale", "float", "Width multiplier (all channels but the stem's)."),
    _space("input_size", "integer", "Input resolution."),
    _space("num_classes", "integer", "Number of classes."),
    _space("stem_stride", "integer", "Stem stride (1 for 28/32-pixel inputs)."),
    _space("r_strides", "list", "Stride (1 or 2) of each R cell."),
    _space("head_channels", "integer", "Channels of the 1x1 head conv."),
)
# How this process runs (never saved; tools/search.py applies them before TensorFlow starts).
PROCESS_SETTINGS = (
    Setting("logical_cpus", 0, Spec("Split the CPU into this many logical devices (tests MirroredStrategy).",
                                    "integer", saved=False)),
    Setting("threads", 0, Spec("TensorFlow CPU threads (0: TensorFlow's default); two verification shards "
                               "({verify_shard}) with one thread each train faster in total on 2 cores.", "integer",
                               saved=False)),
)
SETTINGS: tuple[Setting, ...] = SPACE_SETTINGS + settings_of(SearchConfig) + PROCESS_SETTINGS
BY_PATH = {item.path: item for item in SETTINGS}
# What only the end of a round reads (sampling, the window, the extras, the evaluation): a round whose evaluation
# failed on them (no architecture in too narrow a window) resumes with new values instead of being stranded.
END_OF_ROUND_SETTINGS = frozenset(item.path for item in SETTINGS if item.spec.when == END_OF_ROUND)
# What only the verification after the last round reads: it may change at any time, also once a search is done.
ANY_TIME_SETTINGS = frozenset(item.path for item in SETTINGS if item.spec.when == ANY_TIME)
# What a config.json written before a setting existed meant, and the names settings had there.
MISSING = {item.path: item.spec.missing for item in SETTINGS if item.spec.saved and item.spec.missing is not ABSENT}
OLD_NAMES = {f"{item.path.rpartition('.')[0]}.{old}".lstrip("."): item.path
             for item in SETTINGS for old in item.spec.old_names}


def setting_at(path: str) -> Setting | None:
    """The setting at a config.json path; a ``same_as`` setting's own (``data.seed`` is ``seed``)."""
    item = BY_PATH.get(path)
    return BY_PATH[item.spec.same_as] if item is not None and item.spec.same_as else item


def flag_for(path: str, cost: str | None = None) -> str:
    """The tools/search.py flag that sets a config.json path under ``cost`` (``space``: the space fields no flag
    overrides come from the preset; the leaf's name where no flag sets it)."""
    item = setting_at(path)
    flag = item.flag(cost) if item is not None else None
    if flag is not None:
        return flag.name
    return "space" if path.startswith("space.") else path.rsplit(".", 1)[-1]


def flag_text(path: str, cost: str | None = None) -> str:
    """``flag_for`` as a command line spells it, for messages that tell the user what to change."""
    return option(flag_for(path, cost))

