"""Reading checkpoint files safely and naming them by content (shared by all loaders).

Every way a weights file can fail to load (not a checkpoint at all, cut short, holding objects that are
not loaded for safety, built for another network) is one line: ``cannot read weights from PATH: REASON``,
a ValueError raised when a run is set up, before any computing.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from napari_zsdenoise.weights import CUT_SHORT, NOT_A_CHECKPOINT, checkpoint_problem


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def unreadable(path: str | Path, reason: str = NOT_A_CHECKPOINT) -> ValueError:
    """The one-line error for a weights file that cannot be used."""
    return ValueError(f"cannot read weights from {path}: {reason}")


def _load_problem(error: Exception) -> str:
    """A short reason for a failure of ``torch.load`` on a file that looked like a checkpoint."""
    text = str(error)
    if isinstance(error, pickle.UnpicklingError) and "weights only load failed" in text.lower():
        return ("it holds Python objects besides tensors and plain containers, which are not loaded, for safety "
                "(a file saved with torch.save(model) rather than a state dict?)")
    damaged = any(words in text.lower() for words in ("failed reading", "corrupt", "unexpected end"))
    if isinstance(error, (EOFError, zipfile.BadZipFile)) or damaged:
        return CUT_SHORT
    return NOT_A_CHECKPOINT


def read_checkpoint_file(path: Path) -> Any:
    """Unpickle ``path`` safely (tensors and plain containers only) on the CPU.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    ValueError
        One line, ``cannot read weights from PATH: REASON``, if it is not a readable checkpoint.
    RuntimeError, MemoryError
        When the computer runs out of memory reading it (the caller says so in one line).
    """
    from napari_zsdenoise.devices import is_out_of_memory

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    problem = checkpoint_problem(path)
    if problem is not None:
        raise unreadable(path, problem)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        if is_out_of_memory(exc):
            raise
        raise unreadable(path, _load_problem(exc)) from None


def check_architecture(path: str | Path, architecture: Any, names: tuple[str, ...], *, network: str,
                       max_width: int, max_scales: int) -> dict[str, int]:
    """The constructor arguments ``names`` of ``architecture`` (a checkpoint's), checked to be whole numbers
    in the range this package builds, so that a damaged or foreign file never makes it allocate a giant
    network; ValueError (one line) otherwise."""
    if not isinstance(architecture, Mapping) or any(name not in architecture for name in names):
        raise unreadable(path, f"its {network} architecture is missing or incomplete")
    values = {name: architecture[name] for name in names}
    if any(isinstance(value, bool) or not isinstance(value, int) or value < 1 for value in values.values()):
        raise unreadable(path, f"its {network} architecture is not made of positive whole numbers: {values}")
    limits = {"width": max_width, "scales": max_scales}
    for name, value in values.items():
        limit = limits.get(name, 16)  # channels: 1 (grey), 3 (colour); 16 is far beyond either
        if value > limit:
            raise unreadable(path, f"its {network} has {name} {value}, above the {limit} this package builds")
    return values


def load_state_exactly(network: torch.nn.Module, state: Any, path: str | Path, *, network_name: str) -> None:
    """Load ``state`` into ``network``, every tensor by name and shape, or raise one line saying how the
    file's tensors differ from the network's (torch's own message lists every tensor, over many lines)."""
    if not isinstance(state, Mapping) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise unreadable(path, "its state is not a mapping of names to tensors")
    ours = network.state_dict()
    missing = [name for name in ours if name not in state]
    unexpected = [name for name in state if name not in ours]
    reshaped = [name for name in ours if name in state and tuple(state[name].shape) != tuple(ours[name].shape)]
    differences = []
    for count, what, names in ((len(missing), "missing", missing), (len(unexpected), "unexpected", unexpected),
                               (len(reshaped), "of another shape", reshaped)):
        if count:
            differences.append(f"{count} {what}, e.g. {names[0]!r}")
    if differences:
        raise unreadable(path, f"its tensors do not fit the {network_name} ({'; '.join(differences)})")
    network.load_state_dict(state, strict=True)
