# Runs http_server.py unchanged under gevent: monkey-patch first, then the script.
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import runpy  # noqa: E402
import sys  # noqa: E402

script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "http_server.py")
sys.argv = [script] + sys.argv[1:]
runpy.run_path(script, run_name="__main__")
