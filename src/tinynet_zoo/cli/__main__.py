"""`python -m tinynet_zoo.cli ...` (and `torchrun ... -m tinynet_zoo.cli finetune ...`)."""
import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
