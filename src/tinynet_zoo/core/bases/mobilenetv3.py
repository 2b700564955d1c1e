"""MobileNetV3-Large (timm's `mobilenetv3_large_100`): ReLU in the first three stages, hard-swish after, squeeze-excite
gated by a hard sigmoid in stages 2, 4 and 5, a 16-channel stem, a last 1x1 conv stage (960 channels) and the
'efficient head': pooling, then a 1280-channel 1x1 conv with a bias and no norm. Built by timm's `MobileNetV3`."""
from __future__ import annotations

from .spec import MOBILENETV3_BUILD, Base, Rules, Run, SqueezeExcite, Stage

_STAGES = (
    Stage((Run("ds", 3, 1, 1, 16, 1, act="relu"),)),
    Stage((Run("ir", 3, 2, 4, 24, 1, act="relu"), Run("ir", 3, 1, 3, 24, 1, act="relu"))),
    Stage((Run("ir", 5, 2, 3, 40, 3, se=0.25, act="relu"),)),
    Stage((Run("ir", 3, 2, 6, 80, 1), Run("ir", 3, 1, 2.5, 80, 1), Run("ir", 3, 1, 2.3, 80, 2))),
    Stage((Run("ir", 3, 1, 6, 112, 2, se=0.25),)),
    Stage((Run("ir", 5, 2, 6, 160, 3, se=0.25),)),
    Stage((Run("cn", 1, 1, 1, 960, 1),)),
)

RULES = (
    Rules("mobilenetv3", stem="scaled", repeats="ceil", head="fixed", fix_stem_below=0.75,
          description="MobileNetV3: stem scaled by w (fixed below w=0.75), head fixed, repeats rounded up"),
)

BASES = (
    Base("mobilenetv3_large_100", stages=_STAGES, act="hard_swish", rules="mobilenetv3", stem_channels=16,
         head_channels=1280, head="pooled", timm=MOBILENETV3_BUILD, checkpoint="mobilenetv3_large_100.ra_in1k",
         se=SqueezeExcite(from_expanded=True, rounding="divisible", gate="hard_sigmoid", act="relu"),
         description="MobileNetV3-Large: ReLU then hard-swish, hard-sigmoid squeeze-excite, pooled 1280 head"),
)
