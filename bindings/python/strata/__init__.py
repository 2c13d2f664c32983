"""Strata from Python: memory-mapped layered regions, read without a copy.

Everything is implemented by the C extension ``strata._strata`` and
re-exported here; see docs/PYTHON.md for the rules on lifetimes (a Layer
keeps its region or snapshot alive; a region with exported buffers cannot
be closed).
"""

from ._strata import *  # noqa: F401,F403  (the extension's public names)
from ._strata import __version__  # noqa: F401
from . import _strata

# Every public name of the extension, so that `from strata import *` and
# documentation tools see the classes colleagues' files add as well.
__all__ = ["__version__"] + sorted(
    name for name in dir(_strata) if not name.startswith("_")
)

del _strata
