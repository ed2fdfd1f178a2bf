"""The method registry ``MODELS``: ``MODELS.create(name, backbone=<nn.Module>, **method_kwargs)``.

ProtoNet and OTAM are registered here; other methods register themselves with ``MODELS.register(name)`` in
their own modules. Factories are the classes themselves, so their signatures can be inspected.
"""

from __future__ import annotations

from fsar.models.base import FewShotClassifier
from fsar.models.otam import OTAM
from fsar.models.protonet import ProtoNet
from fsar.registry import Registry

MODELS: Registry[FewShotClassifier] = Registry("model")

MODELS.register("protonet")(ProtoNet)
MODELS.register("otam")(OTAM)
