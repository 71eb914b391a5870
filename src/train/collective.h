// The ranks that train one trial together (data parallel). The trainer sees only this
// interface; sweep/ implements it with MPI_Allreduce (CPU) or NCCL (GPU). The default is one
// rank, for which every operation is the identity.
#pragma once

#include "core/tensor.h"

namespace md::train {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const { return 0; }
  virtual int size() const { return 1; }
  // In place: the mean of `flat` over the group (gradients).
  virtual void average(Tensor& flat) { (void)flat; }
  // In place: rank 0's values on every rank (initial parameters).
  virtual void broadcast(Tensor& flat) { (void)flat; }
  // True on every rank if it is true on any (interrupt requests, divergence).
  virtual bool any(bool flag) { return flag; }
  // Sum of a host value over the group (correct counts in evaluation).
  virtual double sum(double value) { return value; }
};

}  // namespace md::train
