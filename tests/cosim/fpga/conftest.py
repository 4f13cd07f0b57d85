import sys
from pathlib import Path

# tests/fpga_support.py: graph builders, strategies and runners shared by the FPGA tests
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
