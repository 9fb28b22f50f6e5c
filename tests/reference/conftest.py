import sys
from pathlib import Path

# refutil.py lives next to the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
