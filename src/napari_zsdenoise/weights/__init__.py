"""MPI weights pre-trained by this project (``zsdenoise pretrain``) and shipped in the package.

Each ``<name>.pt`` has a model card ``<name>.json`` beside it (recipe, corpus, schedule,
seed, wall time, device, sha256). They are read from the installed package, never
downloaded.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

#: The value of ``MPIConfig.weights`` (and ``--weights``) that selects the shipped weights.
SHIPPED = "shipped"

#: Shipped checkpoint used for every mask ratio (the authors also fill FMD at p=0.85
#: with their 80-95 % checkpoint).
DEFAULT_NAME = "mpi-hourglass-80-95"


def shipped_weights_path(name: str = DEFAULT_NAME) -> Path:
    """Path of the shipped checkpoint ``name`` inside the installed package."""
    path = Path(str(resources.files(__name__).joinpath(f"{name}.pt")))
    if not path.is_file():
        raise FileNotFoundError(f"shipped weights {name!r} are missing from this installation ({path})")
    return path


def shipped_model_card(name: str = DEFAULT_NAME) -> dict[str, Any]:
    """The model card (JSON) of the shipped checkpoint ``name``."""
    card_path = shipped_weights_path(name).with_suffix(".json")
    return json.loads(card_path.read_text())


#: What selects random initialisation where weights are chosen by text (CLI, forms).
NO_WEIGHTS = "none"


def parse_weights_choice(choice: str | Path | None) -> str | None:
    """The weights setting a user's choice stands for: the one parser for CLI, widget and pre-training.

    ``"shipped"`` (any case) selects the shipped weights, ``"none"``, an empty text or None
    random initialisation, anything else a checkpoint file, which must exist.

    Raises
    ------
    FileNotFoundError
        If a file is named that does not exist.
    """
    if choice is None:
        return None
    text = str(choice).strip()
    if text.lower() in ("", NO_WEIGHTS):
        return None
    if text.lower() == SHIPPED:
        return SHIPPED
    if Path(text).expanduser().is_dir():
        raise ValueError(f"weights must be a checkpoint file, not a folder: {text}")
    if not Path(text).expanduser().is_file():
        raise FileNotFoundError(f"weights file not found: {text}")
    return str(Path(text).expanduser())
