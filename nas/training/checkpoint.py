"""Training checkpoints on disk: one `checkpoint.pt` per training folder, read back with a clear error."""
from __future__ import annotations

import os

import torch
from torch import nn

from nas.errors import UserError

CHECKPOINT = "checkpoint.pt"


def read_checkpoint(folder: str) -> dict | None:
    """The checkpoint in `folder` (a dict with "model", "epoch", ...), or None when there is none; a file that
    cannot be read is one line naming it and what to do."""
    path = os.path.join(folder, CHECKPOINT)
    if not os.path.exists(path):
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or a pickle that weights_only refuses
        raise UserError(f"{path}: not a readable training checkpoint ({type(e).__name__}); delete it to train "
                        f"that stage again") from None
    if not isinstance(ck, dict) or "model" not in ck:
        raise UserError(f"{path}: not a training checkpoint (no 'model' state); delete it to train that stage again")
    return ck


def load_trained(model: nn.Module, folder: str) -> nn.Module:
    """`model` with the weights of the checkpoint in `folder`, in eval mode; a missing one is one line."""
    ck = read_checkpoint(folder)
    if ck is None:
        raise FileNotFoundError(f"no trained weights in {folder}: expected {os.path.join(folder, CHECKPOINT)}")
    model.load_state_dict(ck["model"])
    return model.eval()
