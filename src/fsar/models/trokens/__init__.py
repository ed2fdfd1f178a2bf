"""Trokens: semantic-aware relational trajectory tokens for few-shot action recognition, built on fsar's TATs.

Kumar et al., "Trokens: Semantic-Aware Relational Trajectory Tokens for Few-Shot Action Recognition", ICCV 2025
(reference code ``pulkitkumar95/trokens``; our spec: trokens.md). Modules: ``motion`` (:func:`hod_features`,
:func:`relative_motion_features`, the motion embeddings), ``model`` (:class:`Trokens`, a :class:`TATs` subclass),
``convert`` (reference checkpoints), ``classifier`` (:class:`TrokensClassifier`, registry name ``"trokens"``).
The output type is :class:`fsar.models.tats.TATsOutput`. Semantic query points: ``fsar track --query-points
semantic`` (:mod:`fsar.tracking.semantic`).
"""

from fsar.models.tats.model import TATsOutput
from fsar.models.trokens.classifier import TrokensClassifier
from fsar.models.trokens.convert import convert_reference_state_dict
from fsar.models.trokens.model import Trokens
from fsar.models.trokens.motion import MotionEmbedding, QuickGELU, hod_features, relative_motion_features

__all__ = [
    "MotionEmbedding",
    "QuickGELU",
    "TATsOutput",
    "Trokens",
    "TrokensClassifier",
    "convert_reference_state_dict",
    "hod_features",
    "relative_motion_features",
]
