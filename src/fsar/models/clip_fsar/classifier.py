"""CLIPFSARClassifier: CLIP-FSAR with the two-step API. Registered as ``"clip_fsar"``.

Wang et al., "CLIP-guided Prototype Modulating for Few-shot Action Recognition", IJCV 2023.

- ``encode``: the image encoder on every frame (``clip_rn50`` / ``clip_vit_b16`` give ``[N, E, 1, 1]``; other
  backbones' maps are mean-pooled) -> ``{"frames": [B, T, D], "text": [B, D]}``, where ``text`` is the
  embedding of each clip's class name (``ClipBatch.class_names``, as the split file names it, through the
  optional name map). Support and query are separate calls, so in train mode the BatchNorm statistics of the
  RN50 are separate, as in the original. Per clip only, so the caching evaluator computes it once per video.
- ``process_support_set``: one text row per support class (sorted labels) and the prototypes of
  :class:`~fsar.models.clip_fsar.CLIPFSARHead`; ``forward``: its logits. **The query's text is never used.**
- ``loss``: :func:`~fsar.models.clip_fsar.clip_fsar_loss` with the text logits of the support then query videos
  against the train split's class table (``train_class_names``, by split label; the trainer passes them) and
  their split labels as targets.

Text embeddings come from CLIP's text encoder (``text_encoder="clip"``: ``text_weights`` and
``tokenizer_folder``, local only) or, without CLIP weights, from a hashed stand-in (``"hashed"``, see
:mod:`fsar.models.clip_fsar.text`), which makes the method run but not understand class names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fsar.data.batch import ClipBatch
from fsar.models.base import Features, FewShotClassifier
from fsar.models.clip_fsar.head import CLIPFSARHead, CLIPFSARPrototypes, clip_fsar_loss
from fsar.models.clip_fsar.text import TEXT_ENCODERS, ClassTextSource, CLIPClassText, HashedClassText
from fsar.models.protonet import pooled_frame_features
from fsar.models.registry import MODELS


class CLIPFSARClassifier(FewShotClassifier):
    """Backbone + CLIP-FSAR head (see the module docstring).

    Args:
        backbone: frames -> ``[N, D, h, w]``; ``out_channels`` gives D unless ``feat_dim`` is set.
        num_frames, num_heads, mlp_dim, depth, attn_dropout, ffn_dropout, otam_lambda, bidirectional,
            merge_before: see :class:`CLIPFSARHead`.
        text_weight: weight of the video-text loss (3.0 SSv2, 1.5 Kinetics/UCF, 1.2 HMDB in the original).
        text_encoder: ``"clip"`` or ``"hashed"``; ``text_weights`` (OpenAI ``.pt`` or HF folder) and
            ``tokenizer_folder`` for ``"clip"``; ``prompt`` the template.
        class_name_map: JSON file (or dict) mapping split-file class names to text (SSv2 tokens).
        train_class_names: the train split's class names by split label (the trainer passes them).
        backbone_weights: the config's ``model.backbone_weights`` (passed by ``build_model``); the default of
            ``text_weights``, as OpenAI's ``.pt`` files hold both encoders.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        *,
        num_frames: int = 8,
        feat_dim: int | None = None,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        depth: int = 1,
        attn_dropout: float = 0.2,
        ffn_dropout: float = 0.05,
        otam_lambda: float = 0.5,
        bidirectional: bool = True,
        merge_before: bool = False,
        text_weight: float = 1.5,
        text_encoder: str = "clip",
        text_weights: str | os.PathLike[str] | None = None,
        tokenizer_folder: str | os.PathLike[str] | None = None,
        prompt: str = "a photo of {}",
        class_name_map: str | os.PathLike[str] | Mapping[str, str] | None = None,
        train_class_names: Sequence[str] | None = None,
        backbone_weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(backbone)
        feat_dim = self.resolve_feat_dim(feat_dim, backbone)
        if text_encoder not in TEXT_ENCODERS:
            raise ValueError(f"text_encoder must be one of {TEXT_ENCODERS}; got {text_encoder!r}")
        self.num_frames = int(num_frames)
        self.text_weight = float(text_weight)
        self.head = CLIPFSARHead(
            int(feat_dim),
            self.num_frames,
            num_heads=num_heads,
            mlp_dim=mlp_dim,
            depth=depth,
            attn_dropout=attn_dropout,
            ffn_dropout=ffn_dropout,
            otam_lambda=otam_lambda,
            bidirectional=bidirectional,
            merge_before=merge_before,
        )
        if text_encoder == "clip":
            text_weights = text_weights if text_weights is not None else backbone_weights
            if text_weights is None:
                raise ValueError(
                    "clip_fsar with text_encoder='clip' needs text_weights=PATH (OpenAI's .pt of the same CLIP "
                    "model, or a local Hugging Face CLIP folder) and tokenizer_folder=FOLDER (vocab.json, "
                    "merges.txt); without CLIP weights use text_encoder='hashed' (a stand-in with no language)"
                )
            source: ClassTextSource = CLIPClassText(
                int(feat_dim), text_weights, tokenizer_folder, prompt, class_name_map
            )
        else:
            source = HashedClassText(int(feat_dim), class_name_map)
        object.__setattr__(
            self, "text_source", source
        )  # a plain attribute: not a submodule, not in the state
        self.train_class_names = list(train_class_names) if train_class_names is not None else None
        self._support: CLIPFSARPrototypes | None = None
        self.last_loss_terms: dict[str, float] = {}

    # -- per-video part ----------------------------------------------------------------------------------
    def encode(self, batch: ClipBatch) -> Features:
        frames = batch.frames
        if frames.dim() != 5 or frames.shape[1] != self.num_frames:
            raise ValueError(
                f"CLIPFSARClassifier expects frames [B, T={self.num_frames}, 3, H, W]; got {tuple(frames.shape)}"
            )
        feats = pooled_frame_features(self, batch)
        if not batch.class_names:
            return {"frames": feats}
        text = self.text_source.embed(batch.class_names).to(device=feats.device, dtype=feats.dtype)
        return {"frames": feats, "text": text}

    # -- pairwise part -----------------------------------------------------------------------------------
    @staticmethod
    def _parts(features: Features, what: str) -> dict[str, Tensor]:
        if not isinstance(features, dict) or "frames" not in features:
            raise TypeError(f"CLIP-FSAR {what} features must be encode()'s dict with 'frames'")
        return features

    def process_support_set(self, support: Features, support_labels: Tensor) -> None:
        parts = self._parts(support, "support")
        if "text" not in parts:
            raise ValueError(
                "CLIP-FSAR needs the support clips' class names (ClipBatch.class_names) for its text prototypes; "
                "the support batch carried none"
            )
        classes, first = _first_of_each(support_labels)
        text = parts["text"][first]
        for c, row in zip(classes.tolist(), text):
            same = parts["text"][support_labels == c]
            if not torch.equal(same, row.expand_as(same)):
                raise ValueError(f"support videos labelled {c} carry different class names")
        self._support = self.head.prototypes(parts["frames"], support_labels, text)
        self.way = int(classes.numel())

    def forward(self, query: Features) -> Tensor:
        if self._support is None:
            raise RuntimeError("CLIPFSARClassifier: call process_support_set(support, labels) first")
        return self.head.query_logits(self._support, self._parts(query, "query")["frames"])

    # -- training ----------------------------------------------------------------------------------------
    def train_text_table(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        if self.train_class_names is None:
            raise ValueError(
                "CLIP-FSAR's video-text loss needs the train split's class names (train_class_names, by split "
                "label); the trainer passes them from the split files"
            )
        return self.text_source.embed(self.train_class_names).to(device=device, dtype=dtype)

    def loss(self, logits: Tensor, query_labels: Tensor, **context: Any) -> Tensor:
        support = self._parts(context["support"], "support")["frames"]
        query = self._parts(context["query"], "query")["frames"]
        class_ids = torch.cat([context["support_batch"].global_labels, context["query_batch"].global_labels])
        if (class_ids < 0).any():
            raise ValueError("CLIP-FSAR's video-text loss needs each clip's split label (global_labels >= 0)")
        videos = torch.cat([support, query])
        table = self.train_text_table(videos.device, videos.dtype)
        terms = clip_fsar_loss(
            logits,
            query_labels,
            self.head.text_logits(videos, table),
            class_ids.to(videos.device),
            self.text_weight,
        )
        self.last_loss_terms = {k: float(v.detach()) for k, v in terms.items()}
        return terms["total"]


def _first_of_each(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Sorted distinct labels and the index of each one's first occurrence."""
    classes, inverse = torch.unique(labels, sorted=True, return_inverse=True)
    positions = torch.arange(labels.numel(), device=labels.device)
    first = torch.full((classes.numel(),), labels.numel(), device=labels.device, dtype=torch.long)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")
    return classes, first


MODELS.register("clip_fsar")(CLIPFSARClassifier)
