"""The model zoo: named entries with metadata, weights and TFLite files (``registry``); their evaluation
(``evaluation``) and how an entry is written (``writer``). The registry's API is this package's."""

from nse_tf.zoo.registry import (
    EntryConfig,
    ZooEntry,
    ZooError,
    aliases,
    canonical_name,
    get_entry,
    is_entry,
    list_models,
    listed_models,
    load,
    metadata,
    seed_groups,
    tflite_path,
    zoo_dir,
)

__all__ = ["EntryConfig", "ZooEntry", "ZooError", "aliases", "canonical_name", "get_entry", "is_entry", "list_models",
           "listed_models", "load", "metadata", "seed_groups", "tflite_path", "zoo_dir"]
