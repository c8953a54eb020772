"""Train a vcodec model from a config: `python tools/train.py configs/keyframe.toml [--minutes 120]`.

Same as `vcodec train`; see vcodec/training/run.py for the options.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vcodec.training.run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
