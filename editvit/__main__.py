"""`python -m editvit ...` (and so `torchrun -m editvit ...`)."""
import sys

from .cli import main

sys.exit(main())
