"""`python -m mapenc` runs the command line."""

from mapenc.cli import main

raise SystemExit(main())
