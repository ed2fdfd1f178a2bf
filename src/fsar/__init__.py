"""fsar: few-shot action recognition.

Faithful, tested implementations of TA2N (Li et al., AAAI 2022) and TATs (Kumar et al., ECCV 2024),
baselines (ProtoNet, OTAM), real video data pipelines, seeded episodes and the field's evaluation protocol.
"""

__version__ = "0.1.0"
