"""The one setup cell every lesson starts with: ``from lessons_lib import setup; setup(seed=0)``."""

from __future__ import annotations

import random


def setup(seed: int = 0, threads: int = 1) -> dict:
    """Make a lesson reproducible and give its figures the house style.

    - seeds Python's ``random``, NumPy's global generator and torch with ``seed``;
    - sets torch, the BLAS under NumPy (threadpoolctl) and scikit-learn's OpenMP (``OMP_NUM_THREADS``,
      read when scikit-learn is first imported) to ``threads`` CPU threads, and torch to
      deterministic algorithms. One thread by default: the build runs two lessons side by side on
      the book's 2-core machine, the small models of the lessons gain little from a second thread
      (some lose), and a reader who runs a lesson alone gets the very numbers the book prints,
      since a different thread count may sum in a different order;
    - sets ``OMP_WAIT_POLICY=PASSIVE`` (unless already set) before torch is first imported, so
      that idle torch threads sleep instead of spinning. Measured on 2 cores shared with other
      programs, spinning made one small training run 10–30× slower (0.3 s → 3–15 s);
    - keeps jsonschema (imported with nbformat by myst-nb's ``glue``) from loading its optional
      ``rfc3987_syntax`` checker, whose 39 grammars take 2-3 s to compile in every kernel, for an
      "iri" format check that nothing in a lesson uses: the module is marked absent, which
      jsonschema handles by skipping that one check;
    - sets the matplotlib style (:data:`lessons_lib.plots.PLOT_STYLE`, colour cycle
      :data:`lessons_lib.plots.PALETTE`) and the inline
      backend's figure format.

    Nothing a learner should see is silenced: the one warning filtered is tqdm's note that
    Jupyter's progress-bar widgets are missing (Optuna imports tqdm; the book shows no progress
    bars). Returns the settings applied, so that the first cell of a lesson prints what it did.
    """
    from lessons_lib._checks import check_int

    check_int("seed", seed, low=0)
    check_int("threads", threads, low=1)

    import os
    import sys

    if "torch" not in sys.modules:  # only takes effect before OpenMP starts
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "sklearn" not in sys.modules:  # scikit-learn's own OpenMP (gradient boosting) reads it on load
        os.environ["OMP_NUM_THREADS"] = str(threads)
    if "jsonschema" not in sys.modules:  # see the docstring: 2-3 s of every lesson's first glue()
        sys.modules.setdefault("rfc3987_syntax", None)

    import matplotlib as mpl
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # NumPy's BLAS: same thread count as torch, for good
    torch.use_deterministic_algorithms(True)

    import warnings

    # Optuna imports tqdm, which in Jupyter looks for the progress-bar widgets of ipywidgets (not
    # installed: the book shows no progress bars). Its warning says nothing about the lesson.
    warnings.filterwarnings("ignore", message="IProgress not found")

    from lessons_lib.plots import PALETTE, PLOT_STYLE

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
