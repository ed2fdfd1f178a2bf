import inspect

import pytest
from torch import nn

from fsar.models.otam import OTAM
from fsar.models.protonet import ProtoNet
from fsar.models.registry import MODELS


def test_baselines_are_registered_with_inspectable_signatures():
    assert {"protonet", "otam"} <= set(MODELS.names())
    backbone = nn.Identity()
    proto = MODELS.create("protonet", backbone=backbone, metric="l2")
    otam = MODELS.create("otam", backbone=backbone, gamma=0.05, moves="dtw")
    assert isinstance(proto, ProtoNet) and proto.metric == "l2" and proto.backbone is backbone
    assert isinstance(otam, OTAM) and otam.gamma == 0.05 and otam.moves == "dtw"
    assert "gamma" in inspect.signature(MODELS.get("otam")).parameters


def test_unknown_model_and_argument():
    with pytest.raises(KeyError, match="unknown model 'no_such_model'.*otam.*protonet"):
        MODELS.create("no_such_model")
    with pytest.raises(TypeError):
        MODELS.create("otam", backbone=nn.Identity(), lambda_=0.1)
