"""Test-session settings.

The GPU tracking kernels run under numba's CUDA simulator unless the environment says otherwise
(NUMBA_ENABLE_CUDASIM=0 on a machine with a GPU). numba reads the setting when numba.cuda is first
imported, and modules of the tracking chain import it at module level (the audit chain imports
the GPU stages), so it is set here, before any test module is imported; if numba was already
imported without numba.cuda, its configuration is read again."""

import os
import sys

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

if "numba" in sys.modules and "numba.cuda" not in sys.modules:
    sys.modules["numba"].core.config.reload_config()
