from __future__ import annotations

import sys
from pathlib import Path

# the toy algorithm package used by runtime tests must be importable by the network's processes
sys.path.insert(0, str(Path(__file__).resolve().parent))
