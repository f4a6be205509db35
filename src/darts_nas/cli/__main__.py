"""`python -m darts_nas.cli ...`: the `darts-nas` command."""

import sys

from . import main

sys.exit(main())
