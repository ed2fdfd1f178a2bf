"""Few-shot methods. Every method is a :class:`~fsar.models.base.FewShotClassifier` registered in ``MODELS``:

    from fsar.models import MODELS
    model = MODELS.create("otam", backbone=create_backbone("small_cnn"))

Registered: ``protonet``, ``otam`` (baselines), ``ta2n`` (Li et al., AAAI 2022), ``tats`` (Kumar et al.,
ECCV 2024), ``trx`` (Perrett et al., CVPR 2021), ``hyrsm`` (Wang et al., CVPR 2022), ``molo`` (Wang et al.,
CVPR 2023), ``strm`` (Thatipelli et al., CVPR 2022), ``clip_fsar`` (Wang et al., IJCV 2023) and ``trokens`` (Kumar
et al., ICCV 2025).
"""

from fsar.models.base import FewShotClassifier
from fsar.models.clip_fsar import classifier as _clip_fsar_classifier  # noqa: F401  (registers "clip_fsar")
from fsar.models.hyrsm import classifier as _hyrsm_classifier  # noqa: F401  (registers "hyrsm")
from fsar.models.molo import classifier as _molo_classifier  # noqa: F401  (registers "molo")
from fsar.models.registry import MODELS
from fsar.models.strm import classifier as _strm_classifier  # noqa: F401  (registers "strm")
from fsar.models.ta2n import classifier as _ta2n_classifier  # noqa: F401  (registers "ta2n")
from fsar.models.trokens import classifier as _trokens_classifier  # noqa: F401  (registers "trokens")
from fsar.models.trx import classifier as _trx_classifier  # noqa: F401  (registers "trx")

try:  # TATs registers itself when its package is present
    from fsar.models.tats import classifier as _tats_classifier  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - only while the package is being written
    if not (exc.name or "").startswith("fsar.models.tats"):
        raise


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.names(pattern)


__all__ = ["MODELS", "FewShotClassifier", "list_models"]
