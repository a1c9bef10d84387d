"""One worker process of a DDP training run (`invdesign.training.distributed`): started by the
rank-0 process with the DDP environment (MASTER_ADDR/PORT, NODE_RANK, LOCAL_RANK, WORLD_SIZE) and
the resolved experiment config in `INVDESIGN_DDP_CONFIG`; builds the same data module and
generator, trains its shard and exits. It writes nothing (rank 0 writes the outputs).

    python -m invdesign.training.ddp_worker     # only as started by the launcher
"""

from __future__ import annotations

import json
import os
import sys

from invdesign.core.errors import InvdesignError
from invdesign.training.config import config_from_dict
from invdesign.training.distributed import CONFIG_ENV


def main() -> int:
    raw = os.environ.get(CONFIG_ENV)
    if not raw or "LOCAL_RANK" not in os.environ:
        print(f"invdesign: error: {__name__} is started by `invdesign train` with "
              "trainer.strategy=ddp, not by hand", file=sys.stderr)
        return 2
    # lazy: importing the trainer pulls in Lightning and the generators
    from invdesign.training.train import fit_worker  # noqa: PLC0415

    try:
        fit_worker(config_from_dict(json.loads(raw), where="ddp worker config"))
    except InvdesignError as exc:
        print(f"invdesign: error: rank {os.environ['LOCAL_RANK']}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
