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

#: `invdesign.training.distributed.CONFIG_ENV`, not imported from there: that pulls in Lightning
#: (and makes an import cycle through `invdesign.training.train`) before the refusal below.
CONFIG_ENV = "INVDESIGN_DDP_CONFIG"


def main() -> int:
    raw = os.environ.get(CONFIG_ENV)
    if not raw or "LOCAL_RANK" not in os.environ:
        print("invdesign: error: invdesign.training.ddp_worker is started by `invdesign train` "
              "with trainer.strategy=ddp, not by hand", file=sys.stderr)
        return 2
    # lazy: importing the trainer pulls in torch, Lightning and the generators
    from invdesign.core.errors import InvdesignError  # noqa: PLC0415
    from invdesign.training.config import config_from_dict  # noqa: PLC0415
    from invdesign.training.train import fit_worker  # noqa: PLC0415

    try:
        fit_worker(config_from_dict(json.loads(raw), where="ddp worker config"))
    except InvdesignError as exc:
        print(f"invdesign: error: rank {os.environ['LOCAL_RANK']}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
