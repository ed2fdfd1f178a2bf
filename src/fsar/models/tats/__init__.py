"""TATs: Trajectory-aligned Space-time Tokens for few-shot action recognition.

Kumar et al., "Trajectory-aligned Space-time Tokens for Few-shot Action
Recognition", ECCV 2024. Modules: ``sampling`` (token sampler), ``block`` (masked divided space-time block),
``model`` (:class:`TATs`), ``head`` (Bi-MHM few-shot head), ``losses``, ``convert`` (reference checkpoints),
``classifier`` (:class:`TATsClassifier`, model registry name ``"tats"``), ``recipe`` (optimiser groups,
LR schedule).
"""

from fsar.models.tats.classifier import TATsClassifier
from fsar.models.tats.convert import convert_reference_state_dict
from fsar.models.tats.head import bi_mhm_distance, frame_descriptors
from fsar.models.tats.losses import label_smoothed_cross_entropy, tats_loss
from fsar.models.tats.model import TATs, TATsOutput
from fsar.models.tats.recipe import tats_lr, tats_lr_lambda, tats_lr_multiplier, tats_param_groups

__all__ = [
    "TATs",
    "TATsClassifier",
    "TATsOutput",
    "bi_mhm_distance",
    "convert_reference_state_dict",
    "frame_descriptors",
    "label_smoothed_cross_entropy",
    "tats_loss",
    "tats_lr",
    "tats_lr_lambda",
    "tats_lr_multiplier",
    "tats_param_groups",
]
