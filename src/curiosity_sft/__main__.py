import sys

from curiosity_sft.cli import main

sys.exit(main())
