"""The ``workbench`` console script.

No arguments, or a project file: open the window. A subcommand (summary, train, ...): hand
over to ``workbench.cli`` before anything imports Qt, so headless commands never load it. A
first word that is neither (``workbench evaulate x``) is a mistyped command: one error line
with the close matches, exit 2, no window.
"""
from __future__ import annotations

import sys


def _is_headless(argv: list[str]) -> bool:
    from workbench.cli.main import COMMANDS, unknown_command

    return bool(argv) and (argv[0] in COMMANDS or argv[0] in ("-h", "--help", "--version")
                           or unknown_command(argv) is not None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if _is_headless(argv):
        from workbench.cli.main import main as cli_main

        return cli_main(argv)
    from ui.startup import run_window

    return run_window(argv)


if __name__ == "__main__":
    sys.exit(main())
