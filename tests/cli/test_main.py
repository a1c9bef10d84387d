"""The `invdesign` entry point: lazy command modules, complete parsers, help kept in one table."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from invdesign.cli.main import COMMANDS, build_parser, chosen_command, main

HEAVY = ("torch", "lightning", "torch_geometric", "invdesign.pipeline", "invdesign.generators")

# One option (or action) that only the complete parser of each subcommand knows.
OWN_OPTION = {
    ("data",): "build",
    ("data", "build"): "chili3k",
    ("data", "build", "chili3k"): "--crystal-types",
    ("data", "build", "cifs"): "--cif-dir",
    ("data", "build", "clusters"): "--metals",
    ("data", "info"): "--json",
    ("train",): "--config",
    ("evaluate",): "--split-kind",
    ("sample",): "--refine-top",
    ("screen",): "--max-ef",
}


def _loaded_after(argv: list[str], heavy: tuple[str, ...] = HEAVY) -> tuple[int, list[str], str]:
    """Run `main(argv)` in a fresh interpreter; exit code, invdesign.cli modules loaded, stderr.
    Fails if any module of `heavy` was imported."""
    code = (
        "import json, sys\n"
        "from invdesign.cli.main import main\n"
        "try:\n"
        f"    rc = main({argv!r})\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        f"heavy = [m for m in {heavy!r} if m in sys.modules]\n"
        "cli = sorted(m for m in sys.modules if m.startswith('invdesign.cli.'))\n"
        "print(json.dumps({'rc': rc, 'heavy': heavy, 'cli': cli}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"{argv} imported {report['heavy']}"
    return report["rc"], report["cli"], proc.stderr


def test_top_level_help_imports_no_command_module() -> None:
    rc, cli, _ = _loaded_after(["--help"])
    assert rc == 0 and cli == ["invdesign.cli.main"]


def test_sample_help_imports_neither_torch_nor_the_pipeline_run() -> None:
    """`sample --help` reads the defaults (`invdesign.pipeline.defaults`) only."""
    heavy = ("torch", "lightning", "invdesign.pipeline.run", "invdesign.generators")
    rc, cli, _ = _loaded_after(["sample", "--help"], heavy)
    assert rc == 0 and "invdesign.cli.sample" in cli


def test_data_info_imports_only_the_data_command(tmp_path: Path) -> None:
    rc, cli, err = _loaded_after(["data", "info", str(tmp_path)])
    assert rc == 2 and "no CHILI *.h5 files" in err
    assert cli == [
        "invdesign.cli.data",
        "invdesign.cli.data_build",
        "invdesign.cli.data_info",
        "invdesign.cli.main",
    ]


@pytest.mark.parametrize("path", sorted(OWN_OPTION), ids=" ".join)
def test_every_subcommand_help_is_complete(
    path: tuple[str, ...], capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*path, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: invdesign {' '.join(path)}") and OWN_OPTION[path] in out


def test_table_help_equals_the_modules_help() -> None:
    sub = next(
        a for a in build_parser([], full=True)._actions if isinstance(a, argparse._SubParsersAction)
    )
    registered = {a.dest: a.help for a in sub._choices_actions}
    assert registered == COMMANDS


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["dta", "info"])
    assert exc.value.code == 2 and "invalid choice: 'dta'" in capsys.readouterr().err


def test_chosen_command() -> None:
    assert chosen_command(["--version"]) is None
    assert chosen_command(["data", "info", "x"]) == "data"
    assert chosen_command(["-h", "sample"]) == "sample"
    assert chosen_command(["nope"]) is None
