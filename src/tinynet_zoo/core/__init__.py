"""The core: base networks, twists, decoded architectures, exact MAC counts, the catalogue and the formulas.

Nothing here imports another layer of the package; torch and timm load only inside functions that need them.
"""
