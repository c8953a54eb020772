import sys

from vcodec.cli import main

sys.exit(main())
