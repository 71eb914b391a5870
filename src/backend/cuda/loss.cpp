// Losses: cross entropy (label smoothing), KL divergence with temperature (gradients to the
// student and the teacher), MSE. Row losses come from the kernels of loss.cu and their batch
// mean from the deterministic reduction of elementwise.cu, written to the scalar loss on the
// device: nothing here waits for the host. Labels stay on the device, so a label outside
// [0, K) is not an exception (as on the CPU) but a NaN loss and NaN gradients for its row,
// which the trainer's non-finite check reports.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace md::cuda {
namespace {

struct Logits {
  std::int64_t batch = 0;
  std::int64_t classes = 0;
};

Logits logits_of(const char* op, const char* name, const Tensor& logits) {
  MD_CHECK(logits.ndim() == 2 && logits.dim(0) > 0 && logits.dim(1) > 0, op, ": ", name, " ",
           logits.describe(), " is not a non-empty (N, K)");
  return Logits{logits.dim(0), logits.dim(1)};
}

void check_labels(const char* op, const Tensor& labels, const Logits& shape, Device device) {
  MD_CHECK(labels.defined() && labels.dtype() == DType::Int32 && labels.device() == device &&
               labels.shape() == Shape{shape.batch},
           op, ": labels ", labels.describe(), " must be int32 (", shape.batch, ") on ",
           device.str());
}

void check_scalar(const char* op, const char* name, const Tensor& tensor) {
  MD_CHECK(tensor.defined() && tensor.numel() == 1, op, ": ", name, " ", tensor.describe(),
           " is not a scalar");
}

}  // namespace

void CudaBackend::cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss,
                                        double label_smoothing) {
  const char* op = "cross_entropy_forward";
  expect_float32(op, {&logits, &loss});
  const Logits shape = logits_of(op, "logits", logits);
  check_labels(op, labels, shape, device());
  check_scalar(op, "loss", loss);
  MD_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, op, ": label smoothing ",
           label_smoothing, " is outside [0, 1]");
  DeviceGuard guard(device_index_);
  const int blocks = kernels::reduction_blocks(shape.batch);
  DeviceBuffer scratch(*context_.allocator,
                       static_cast<std::size_t>(shape.batch + blocks) * sizeof(double));
  double* row_losses = scratch.as<double>();
  double* partials = row_losses + shape.batch;
  kernels::cross_entropy_rows(logits.data<float>(), labels.data<std::int32_t>(), shape.batch,
                              shape.classes, label_smoothing, row_losses, context_.stream);
  kernels::sum_partials(row_losses, shape.batch, partials, blocks, context_.stream);
  kernels::finish_sum(partials, blocks, 1.0 / static_cast<double>(shape.batch), nullptr,
                      loss.data<float>(), context_.stream);
}

void CudaBackend::cross_entropy_backward(const Tensor& logits, const Tensor& labels,
                                         const Tensor& grad_loss, Tensor& grad_logits,
                                         double label_smoothing, Write write) {
  const char* op = "cross_entropy_backward";
  expect_float32(op, {&logits, &grad_loss, &grad_logits});
  const Logits shape = logits_of(op, "logits", logits);
  check_labels(op, labels, shape, device());
  check_scalar(op, "grad_loss", grad_loss);
  MD_CHECK(grad_logits.shape() == logits.shape(), op, ": grad_logits ", grad_logits.describe(),
           " for logits ", logits.describe());
  DeviceGuard guard(device_index_);
  kernels::cross_entropy_backward(logits.data<float>(), labels.data<std::int32_t>(),
                                  grad_loss.data<float>(), shape.batch, shape.classes,
                                  label_smoothing, grad_logits.data<float>(), write_beta(write),
                                  context_.stream);
}

void CudaBackend::kl_div_forward(const Tensor& student, const Tensor& teacher, Tensor& loss,
                                 double temperature) {
  const char* op = "kl_div_forward";
  expect_float32(op, {&student, &teacher, &loss});
  const Logits shape = logits_of(op, "student", student);
  MD_CHECK(teacher.shape() == student.shape(), op, ": teacher ", teacher.describe(),
           " for student ", student.describe());
  check_scalar(op, "loss", loss);
  MD_CHECK(temperature > 0.0, op, ": temperature ", temperature, " is not positive");
  DeviceGuard guard(device_index_);
  const int blocks = kernels::reduction_blocks(shape.batch);
  DeviceBuffer scratch(*context_.allocator,
                       static_cast<std::size_t>(shape.batch + blocks) * sizeof(double));
  double* row_losses = scratch.as<double>();
  double* partials = row_losses + shape.batch;
  kernels::kl_div_rows(student.data<float>(), teacher.data<float>(), shape.batch, shape.classes,
                       temperature, row_losses, context_.stream);
  kernels::sum_partials(row_losses, shape.batch, partials, blocks, context_.stream);
  kernels::finish_sum(partials, blocks, 1.0 / static_cast<double>(shape.batch), nullptr,
                      loss.data<float>(), context_.stream);
}

void CudaBackend::kl_div_backward(const Tensor& student, const Tensor& teacher,
                                  const Tensor& grad_loss, Tensor& grad_student,
                                  Tensor& grad_teacher, double temperature, Write write) {
  const char* op = "kl_div_backward";
  expect_float32(op, {&student, &teacher, &grad_loss, &grad_student, &grad_teacher});
  const Logits shape = logits_of(op, "student", student);
  MD_CHECK(teacher.shape() == student.shape(), op, ": teacher ", teacher.describe(),
           " for student ", student.describe());
  MD_CHECK(!grad_student.defined() || grad_student.shape() == student.shape(), op,
           ": grad_student ", grad_student.describe(), " for ", student.describe());
  MD_CHECK(!grad_teacher.defined() || grad_teacher.shape() == student.shape(), op,
           ": grad_teacher ", grad_teacher.describe(), " for ", student.describe());
  check_scalar(op, "grad_loss", grad_loss);
  MD_CHECK(temperature > 0.0, op, ": temperature ", temperature, " is not positive");
  if (!grad_student.defined() && !grad_teacher.defined()) return;
  DeviceGuard guard(device_index_);
  kernels::kl_div_backward(student.data<float>(), teacher.data<float>(), grad_loss.data<float>(),
                           shape.batch, shape.classes, temperature,
                           grad_student.defined() ? grad_student.data<float>() : nullptr,
                           grad_teacher.defined() ? grad_teacher.data<float>() : nullptr,
                           write_beta(write), context_.stream);
}

void CudaBackend::mse_forward(const Tensor& a, const Tensor& b, Tensor& loss) {
  const char* op = "mse_forward";
  expect_float32(op, {&a, &b, &loss});
  MD_CHECK(a.shape() == b.shape() && a.numel() > 0, op, ": a ", a.describe(), ", b ", b.describe());
  check_scalar(op, "loss", loss);
  DeviceGuard guard(device_index_);
  const int blocks = kernels::reduction_blocks(a.numel());
  DeviceBuffer partials(*context_.allocator, static_cast<std::size_t>(blocks) * sizeof(double));
  kernels::squared_difference_partials(a.data<float>(), b.data<float>(), a.numel(),
                                       partials.as<double>(), blocks, context_.stream);
  kernels::finish_sum(partials.as<double>(), blocks, 1.0 / static_cast<double>(a.numel()), nullptr,
                      loss.data<float>(), context_.stream);
}

void CudaBackend::mse_backward(const Tensor& a, const Tensor& b, const Tensor& grad_loss,
                               Tensor& grad_a, Tensor& grad_b, Write write) {
  const char* op = "mse_backward";
  expect_float32(op, {&a, &b, &grad_loss, &grad_a, &grad_b});
  MD_CHECK(a.shape() == b.shape() && a.numel() > 0, op, ": a ", a.describe(), ", b ", b.describe());
  MD_CHECK(!grad_a.defined() || grad_a.shape() == a.shape(), op, ": grad_a ", grad_a.describe(),
           " for ", a.describe());
  MD_CHECK(!grad_b.defined() || grad_b.shape() == a.shape(), op, ": grad_b ", grad_b.describe(),
           " for ", a.describe());
  check_scalar(op, "grad_loss", grad_loss);
  if (!grad_a.defined() && !grad_b.defined()) return;
  DeviceGuard guard(device_index_);
  kernels::mse_backward(a.data<float>(), b.data<float>(), grad_loss.data<float>(), a.numel(),
                        grad_a.defined() ? grad_a.data<float>() : nullptr,
                        grad_b.defined() ? grad_b.data<float>() : nullptr, write_beta(write),
                        context_.stream);
}

}  // namespace md::cuda
