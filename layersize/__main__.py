"""Run ``near-size`` as ``python -m layersize``."""

from layersize.cli.size import main

if __name__ == "__main__":
    main()
