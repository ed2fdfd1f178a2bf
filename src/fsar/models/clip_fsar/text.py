"""Where CLIP-FSAR's class text embeddings come from: CLIP's text encoder, or a named stand-in for tests and demos.

- :class:`CLIPClassText`: ``prompt.format(name)`` through CLIP's frozen text encoder
  (:func:`fsar.backbones.clip.load_clip_text`, local weights and tokenizer folder), computed once per name and
  cached, as the original computes its tables once at construction. Not in the state dict.
- :class:`HashedClassText` (``text_encoder="hashed"``): each name's embedding is a fixed N(0, 1) vector drawn
  from a generator seeded by the name's SHA-256, independent of any global RNG. It carries no language: classes
  are told apart, but nothing links a name's meaning to the video. It lets the method run end to end without
  CLIP weights (tests, the synthetic demo); it is not CLIP-FSAR's text prior.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from fsar.data.class_names import class_texts, read_class_name_map

TEXT_ENCODERS = ("clip", "hashed")


class ClassTextSource:
    """``embed(names) -> [C, D]`` float32 on CPU, cached by name; names go through the optional name map."""

    def __init__(self, dim: int, name_map: str | os.PathLike[str] | Mapping[str, str] | None = None) -> None:
        self.dim = int(dim)
        if name_map is None or isinstance(name_map, Mapping):
            self.name_map = dict(name_map or {})
            self.map_source = "class-name map (none given)" if name_map is None else "class-name map"
        else:
            self.name_map = read_class_name_map(name_map)
            self.map_source = f"class-name map {name_map}"
        self._cache: dict[str, Tensor] = {}

    def embed(self, names: Sequence[str]) -> Tensor:
        texts = class_texts(names, self.name_map, self.map_source)
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if new:
            for text, row in zip(new, self._compute(new)):
                self._cache[text] = row.detach().float().cpu()
        return torch.stack([self._cache[t] for t in texts]) if texts else torch.zeros(0, self.dim)

    def _compute(self, texts: list[str]) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class HashedClassText(ClassTextSource):
    """A fixed random vector per name (seeded by its SHA-256); see the module docstring."""

    def _compute(self, texts: list[str]) -> Tensor:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") >> 1
            rows.append(torch.randn(self.dim, generator=torch.Generator().manual_seed(seed)))
        return torch.stack(rows)


class CLIPClassText(ClassTextSource):
    """CLIP's text encoder on ``prompt.format(name)``; loaded on first use."""

    def __init__(
        self,
        dim: int,
        weights: str | os.PathLike[str],
        tokenizer_folder: str | os.PathLike[str] | None,
        prompt: str = "a photo of {}",
        name_map: str | os.PathLike[str] | Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(dim, name_map)
        from fsar.backbones.clip import load_clip_text

        self.encoder = load_clip_text(weights, tokenizer_folder)
        if self.encoder.out_channels != self.dim:
            raise ValueError(
                f"the CLIP text encoder of {weights} embeds into {self.encoder.out_channels} dimensions, the image "
                f"features have {self.dim}; use the text weights of the same CLIP model as the backbone"
            )
        self.prompt = prompt
        self.encoder.tokenize([prompt.format("x")])  # no tokenizer folder: a clear error now, not mid-run

    @torch.no_grad()
    def _compute(self, texts: list[str]) -> Tensor:
        return self.encoder.encode_names(texts, prompt=self.prompt)
