"""ingur_lib: the helper library of the Ingur book (efficient Vision Transformers, rebuilt from scratch).

Rooms, one concern each:
  data/      datasets through Hugging Face datasets (offline first), cache, batched augmentation
  nn/        attention (+ capture, rollout), patch tokens, blocks
  models/    the configurable ViT
  train.py   the one training loop        viz.py     plots, thesis_style()
  ledger.py  reported vs reproduced      figures.py thesis figure registry
  exercises.py  classroom checks        widgets.py ipywidgets explorers
  chapters/  each chapter's configs per profile, run() and reproduce()
"""
from .errors import DataUnavailableError, IngurError
from .profiles import PROFILES, get_profile
from .runtime import setup

__version__ = "0.1.0"
__all__ = ["DataUnavailableError", "IngurError", "PROFILES", "get_profile", "setup", "__version__"]
