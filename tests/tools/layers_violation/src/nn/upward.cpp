// A layering violation for the checker's own test: nn/ may not include train/.
#include "train/learner.h"
