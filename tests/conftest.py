"""Makes the checkout importable as the collection gpufleet.llm for every test."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".collections"))
