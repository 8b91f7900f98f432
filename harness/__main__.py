import sys

from offload_conformance.harness.cli import main

sys.exit(main())
