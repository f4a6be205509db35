"""`python -m darts_nas ...`: the `darts-nas` command without installing the package's script (e.g. with
PYTHONPATH=src on a machine that already has PyTorch)."""


from .cli import main
from .distributed import exit_process

exit_process(main())
