# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""``python -m hrp`` is the ``hrp`` command."""
import sys

from hrp.cli import main

if __name__ == '__main__':
    sys.exit(main())
