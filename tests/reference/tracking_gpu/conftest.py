"""The GPU tracking tests run their kernels under numba's CUDA simulator unless the environment
says otherwise (NUMBA_ENABLE_CUDASIM=0 on a machine with a GPU). This must happen before numba
is imported anywhere; when another folder's tests imported numba first, its configuration is
re-read so that numba.cuda, imported later by the GPU modules, still comes up as the simulator."""

import os
import sys

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

if "numba" in sys.modules and "numba.cuda" not in sys.modules:
    sys.modules["numba"].core.config.reload_config()
