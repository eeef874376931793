"""lessons_lib: the small library behind the lessons of *The Learning Rate, Hands On*.

One module per topic (``landscapes``, ``descent``, ``claims``, ``data``, ``models``, ``train``,
``plots`` ...). Importing the package has no side effects; the first cell of every lesson calls
:func:`setup`, which fixes the seeds, the thread count and the plot style.
"""

from lessons_lib.setup import setup

__all__ = ["setup"]
__version__ = "0.1.0"
