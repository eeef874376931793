"""The one setup cell every lesson starts with: ``from lessons_lib import setup; setup(seed=0)``."""

from __future__ import annotations

import random

#: The colours of the house style, one per learning rate in a chapter (colour-blind safe, Okabe-Ito).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

#: Matplotlib settings of the house style: thick lines, no chart junk, no titles (captions say it).
PLOT_STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.constrained_layout.use": True,
    "lines.linewidth": 2,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": "medium",
    "axes.labelsize": "medium",
    "legend.frameon": False,
    "font.size": 11,
    "animation.html": "jshtml",
    "animation.embed_limit": 8.0,
}


def setup(seed: int = 0, threads: int = 2) -> dict:
    """Make a lesson reproducible and give its figures the house style.

    - seeds Python's ``random``, NumPy's global generator and torch with ``seed``;
    - sets torch to ``threads`` CPU threads (the book's budget machine has 2 cores) and to
      deterministic algorithms;
    - sets ``OMP_WAIT_POLICY=PASSIVE`` (unless already set) before torch is first imported, so
      that idle torch threads sleep instead of spinning. Measured on 2 cores shared with other
      programs, spinning made one small training run 10–30× slower (0.3 s → 3–15 s);
    - sets the matplotlib style (:data:`PLOT_STYLE`, colour cycle :data:`PALETTE`) and the inline
      backend's figure format.

    Nothing is silenced: warnings a learner should see still show. Returns the settings applied,
    so that the first cell of a lesson prints what it did.
    """
    from lessons_lib._checks import check_int

    check_int("seed", seed, low=0)
    check_int("threads", threads, low=1)

    import os
    import sys

    if "torch" not in sys.modules:  # only takes effect before OpenMP starts
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    import matplotlib as mpl
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)

    mpl.rcParams.update(PLOT_STYLE)
    mpl.rcParams["axes.prop_cycle"] = mpl.cycler(color=PALETTE)
    try:  # inside Jupyter: crisp figures; elsewhere (pytest, scripts) nothing to do
        from IPython import get_ipython

        if get_ipython() is not None:
            from matplotlib_inline.backend_inline import set_matplotlib_formats

            set_matplotlib_formats("png")
    except ImportError:
        pass
    return {"seed": seed, "torch_threads": torch.get_num_threads(), "numpy": np.__version__,
            "torch": torch.__version__}
