// MPI outside sweep/, for the checker's own test.
#include <mpi.h>
