"""``python -m bench``: run the benchmarks and regenerate docs/benchmarks.md."""

from bench.run import main

raise SystemExit(main())
