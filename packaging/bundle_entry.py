"""Entry script for the PyInstaller bundle: the same `workbench` console script."""
import sys

from ui.app import main

if __name__ == "__main__":
    sys.exit(main())
