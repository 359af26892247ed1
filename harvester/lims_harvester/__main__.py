import sys

from lims_harvester.cli import main

sys.exit(main())
