"""Write `tests/references/configs/<name>.json`: each experiment config fully resolved, as
`load_config` returns it (plain JSON, schema defaults filled in, `data.root` left as "???").

    python tools/make_config_references.py [--rev 97872fb]

The references were made from the 17 flat configs (`configs/<name>.yaml`) as they stood at `--rev`
(read with `git show`), before the configs were composed from groups;
`tests/training/test_config_compose.py` checks that every `configs/experiment/<name>.yaml` resolves
to exactly its reference. Rerun this only to record a deliberate change of an experiment.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from invdesign.training.config import load_config, to_container

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "references" / "configs"
#: The last commit with the flat configs.
FLAT_REV = "97872fb"


def flat_configs(rev: str) -> dict[str, str]:
    """{name: YAML text} of the top-level `configs/*.yaml` at git revision `rev`."""
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{rev}:configs"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout.split()
    texts = {}
    for name in sorted(n for n in listing if n.endswith(".yaml")):
        texts[name.removesuffix(".yaml")] = subprocess.run(
            ["git", "show", f"{rev}:configs/{name}"],
            cwd=REPO, check=True, capture_output=True, text=True,
        ).stdout
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default=FLAT_REV, help="git revision holding the flat configs")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in flat_configs(args.rev).items():
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(text)
            resolved = to_container(load_config(path))
            (OUT / f"{name}.json").write_text(json.dumps(resolved, indent=2, sort_keys=True) + "\n")
            print(f"{name}: {OUT / name}.json")


if __name__ == "__main__":
    main()
