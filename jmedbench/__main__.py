import sys

from jmedbench.cli import main

sys.exit(main())
