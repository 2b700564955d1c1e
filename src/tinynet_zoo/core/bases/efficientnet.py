"""EfficientNet-B0 and EfficientNet-Lite0, the bases TinyNets are twisted from, and the rule sets of their
families (TinyNet, EfficientNet, EfficientNet-Lite)."""
from __future__ import annotations

from .spec import Base, Rules, stage

_B0_STAGES = (
    stage("ds", kernel=3, stride=1, expand=1, channels=16, repeats=1, se=0.25),
    stage("ir", kernel=3, stride=2, expand=6, channels=24, repeats=2, se=0.25),
    stage("ir", kernel=5, stride=2, expand=6, channels=40, repeats=2, se=0.25),
    stage("ir", kernel=3, stride=2, expand=6, channels=80, repeats=3, se=0.25),
    stage("ir", kernel=5, stride=1, expand=6, channels=112, repeats=3, se=0.25),
    stage("ir", kernel=5, stride=2, expand=6, channels=192, repeats=4, se=0.25),
    stage("ir", kernel=3, stride=1, expand=6, channels=320, repeats=1, se=0.25),
)

RULES = (
    Rules("tinynet", stem="fixed", repeats="round", head="max",
          description="TinyNet: 32-channel stem, repeats rounded to nearest, head max(1280, 1280*w)"),
    Rules("efficientnet", stem="scaled", repeats="ceil", head="scaled",
          description="EfficientNet: stem and head scaled by w, repeats rounded up"),
    Rules("lite", stem="fixed", repeats="ceil", head="fixed", fix_first_last=True,
          description="EfficientNet-Lite: fixed stem and head, first/last stage depth fixed, repeats rounded up"),
)

BASES = (
    Base("efficientnet_b0", stages=_B0_STAGES, act="swish", rules="efficientnet",
         checkpoint="efficientnet_b0.ra_in1k", description="EfficientNet-B0: swish, squeeze-excite in every block"),
    Base("efficientnet_lite0", stages=tuple(stage(**{**s.runs[0].__dict__, "se": 0.0}) for s in _B0_STAGES),
         act="relu6", rules="lite", checkpoint="efficientnet_lite0.pypi_in1k",  # sha256 pinned; ra_in1k by tag
         description="EfficientNet-Lite0: ReLU6, no squeeze-excite, fixed stem and head"),
)
