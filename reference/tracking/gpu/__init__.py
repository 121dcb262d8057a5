"""GPU implementations of the tracking stages (numba.cuda kernels on CuPy arrays).

Every stage here takes and returns the same product types as its CPU twin in
:mod:`reference.tracking`, with device arrays in place of numpy arrays. :mod:`backend` hides
the difference between a real device (CuPy arrays, numba.cuda kernels) and numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``, numpy arrays), which CI uses to test the kernels on tiny
events without a GPU.
"""
