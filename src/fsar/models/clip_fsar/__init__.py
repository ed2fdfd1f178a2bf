"""CLIP-FSAR: Wang et al., "CLIP-guided Prototype Modulating for Few-shot Action Recognition", IJCV 2023.

- :class:`CLIPFSARHead`, :func:`clip_fsar_loss`: the head on per-frame features and class text embeddings;
- :func:`convert_reference_state_dict`: the original head's weights;
- :class:`~fsar.models.clip_fsar.classifier.CLIPFSARClassifier` (registered as ``"clip_fsar"``): the method with
  fsar's two-step API, its class text from CLIP's text encoder;
- the CLIP encoders are ``fsar.backbones.create_backbone("clip_rn50" | "clip_vit_b16")`` and
  :func:`fsar.backbones.clip.load_clip_text`.
"""

from fsar.models.clip_fsar.convert import convert_reference_state_dict
from fsar.models.clip_fsar.head import CLIPFSARHead, PrototypeTransformer, clip_fsar_loss

__all__ = ["CLIPFSARHead", "PrototypeTransformer", "clip_fsar_loss", "convert_reference_state_dict"]
