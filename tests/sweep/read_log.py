# Prints one root attribute of each HDF5 trial log given: "<file> <value>" per line.
# Usage: read_log.py ATTRIBUTE LOG.h5 ...
import sys

import h5py

for path in sys.argv[2:]:
    with h5py.File(path, "r") as f:
        value = f.attrs[sys.argv[1]]
        print(path, value.decode() if isinstance(value, bytes) else value)
