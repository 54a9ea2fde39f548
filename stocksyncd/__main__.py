"""Allow ``python -m stocksyncd``."""

from stocksyncd.cli import main

raise SystemExit(main())
