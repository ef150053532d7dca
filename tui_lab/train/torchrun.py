"""``python -m tui_lab.train.torchrun ARGS``: torchrun (``torch.distributed.run``) with the same
arguments, ending with one line instead of torchrun's Python traceback when a worker fails.

The failing worker has printed its own ``error: …`` line and written the message into the
run folder; torchrun's ``ChildFailedError`` traceback would only bury it. Exit code 1 on a
worker failure, as torchrun's.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    try:
        torchrun_main(sys.argv[1:] if argv is None else argv)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        print(f"torchrun: {len(exc.failures)} worker(s) on this node failed (first: rank {rank}, "
              f"exit code {failure.exitcode})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
