"""The command lines: each module's ``main()`` parses options and calls into the package. They are the console
scripts declared in ``pyproject.toml`` (``convlstm-train``, ``convlstm-nowcast``, ...) and what ``scripts/*.py``
run; the top room of the house, importing any room below and imported by none.
"""

import os
import sys

__all__ = ["program_name"]


def program_name(script: str) -> str:
    """The name the user ran: the console script (``convlstm-train``) when that is how the command started, else
    `script` (``"train.py"``, as ``python scripts/train.py`` runs it); error messages start with it."""
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return invoked if invoked.startswith("convlstm-") else script
