"""Lets this directory run as a package: `python -m youtube-8m.train` (AI Platform Training).

The modules import each other flat (`import readers`), as they do when run as scripts
(`python train.py`), where Python puts their directory first on sys.path. When the directory is
installed and run as a package, nothing does, so importing the package does it here. (pytest
imports this file too, after putting the directory's parent first: moving the directory back in
front keeps the parent's files from shadowing these modules.)
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE in sys.path:
    sys.path.remove(_HERE)
sys.path.insert(0, _HERE)
