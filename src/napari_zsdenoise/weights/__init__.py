"""MPI weights pre-trained by this project (``zsdenoise pretrain``) and shipped in the package.

Each ``<name>.pt`` has a model card ``<name>.json`` beside it (recipe, corpus, schedule,
seed, wall time, device, sha256). They are read from the installed package, never
downloaded.
"""

from __future__ import annotations

import json
import zipfile
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


#: The reason given for a file that is no PyTorch checkpoint at all.
NOT_A_CHECKPOINT = "not a PyTorch checkpoint"
# A checkpoint of torch's legacy format (before the zip archives of torch 1.6) begins with a pickled
# magic number: the protocol opcode and its version, then a long integer of 10 bytes, these bytes.
_LEGACY_MAGIC = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
CUT_SHORT = "the file is cut short or damaged (a checkpoint not completely written or copied?)"


def checkpoint_problem(path: str | Path) -> str | None:
    """Why the file ``path`` cannot be a PyTorch checkpoint, from its first bytes and (for a zip archive)
    its table of contents, without loading it (and without torch); None when it may be one.

    Cheap enough to run as soon as a file is named on the command line, so that a text file or a file
    cut short in copying is refused before anything else happens.
    """
    with open(path, "rb") as handle:
        head = handle.read(16)
    if not head:
        return "the file is empty"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return CUT_SHORT
        if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
            return "a zip archive, but " + NOT_A_CHECKPOINT
        return None
    if head[:1] == b"\x80" and head[2:14] == _LEGACY_MAGIC:
        return None
    return NOT_A_CHECKPOINT


def check_weights_file(choice: str | None) -> None:
    """ValueError, ``cannot read weights from PATH: REASON``, when the weights setting ``choice`` names
    a file that cannot be a PyTorch checkpoint (see :func:`checkpoint_problem`); the shipped weights and
    random initialisation pass. Whether the file fits the method's network is checked when a run is set up."""
    if choice is None or choice == SHIPPED:
        return
    problem = checkpoint_problem(choice)
    if problem is not None:
        raise ValueError(f"cannot read weights from {choice}: {problem}")
