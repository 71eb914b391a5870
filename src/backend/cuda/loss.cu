// Loss kernels: cross entropy with label smoothing, KL divergence with temperature, and the
// MSE gradient. One block per row of logits; each row's loss is written in double and the
// batch mean is taken by the deterministic reduction of elementwise.cu. The upstream gradient
// is read from device memory, so a backward pass never waits for the host.
#include "backend/cuda/device_utils.cuh"
#include "backend/cuda/kernels.h"

namespace md::cuda::kernels {
namespace {

// log(sum_k exp(scale·row[k])) over the row, computed by the whole block.
__device__ double block_log_sum_exp(const float* row, std::int64_t classes, float scale) {
  float maximum = -INFINITY;
  for (std::int64_t k = threadIdx.x; k < classes; k += kBlockSize) {
    const float value = scale * row[k];
    maximum = (value > maximum || value != value) ? value : maximum;
  }
  maximum = block_max(maximum);
  double sum_exp = 0.0;
  for (std::int64_t k = threadIdx.x; k < classes; k += kBlockSize) {
    sum_exp += exp(static_cast<double>(scale * row[k]) - static_cast<double>(maximum));
  }
  sum_exp = block_sum(sum_exp);
  return static_cast<double>(maximum) + log(sum_exp);
}

__global__ void cross_entropy_rows_kernel(const float* logits, const std::int32_t* labels,
                                          std::int64_t classes, double label_smoothing,
                                          double* row_losses) {
  const std::int64_t row_index = blockIdx.x;
  const float* row = logits + row_index * classes;
  const double log_sum_exp = block_log_sum_exp(row, classes, 1.0f);
  double sum_logits = 0.0;
  for (std::int64_t k = threadIdx.x; k < classes; k += kBlockSize) sum_logits += row[k];
  sum_logits = block_sum(sum_logits);
  if (threadIdx.x == 0) {
    const std::int32_t label = labels[row_index];
    if (label < 0 || label >= classes) {
      row_losses[row_index] = NAN;
    } else {
      // −Σ_k target_k·log_softmax_k with target = (1−s)·onehot + s/K
      row_losses[row_index] = log_sum_exp - (1.0 - label_smoothing) * row[label] -
                              label_smoothing / static_cast<double>(classes) * sum_logits;
    }
  }
}

__global__ void cross_entropy_backward_kernel(const float* logits, const std::int32_t* labels,
                                              const float* grad_loss, std::int64_t rows,
                                              std::int64_t classes, double label_smoothing,
                                              float* grad_logits, float beta) {
  const std::int64_t row_index = blockIdx.x;
  const float* row = logits + row_index * classes;
  float* grad_row = grad_logits + row_index * classes;
  const double log_sum_exp = block_log_sum_exp(row, classes, 1.0f);
  const std::int32_t label = labels[row_index];
  const bool valid = label >= 0 && label < classes;
  const double scale = static_cast<double>(grad_loss[0]) / static_cast<double>(rows);
  const double smooth = label_smoothing / static_cast<double>(classes);
  for (std::int64_t k = threadIdx.x; k < classes; k += kBlockSize) {
    const double probability = exp(static_cast<double>(row[k]) - log_sum_exp);
    const double target = (k == label ? 1.0 - label_smoothing : 0.0) + smooth;
    const double gradient = valid ? scale * (probability - target) : NAN;
    blend(&grad_row[k], static_cast<float>(gradient), beta);
  }
}

// The per-row quantities of KL(p ‖ q), p = softmax(teacher/T), q = softmax(student/T).
struct KlRow {
  double log_sum_exp_student;
  double log_sum_exp_teacher;
  float inverse_temperature;
};

__device__ KlRow kl_row(const float* student, const float* teacher, std::int64_t classes,
                        double temperature) {
  const float inverse_temperature = static_cast<float>(1.0 / temperature);
  KlRow row;
  row.inverse_temperature = inverse_temperature;
  row.log_sum_exp_student = block_log_sum_exp(student, classes, inverse_temperature);
  row.log_sum_exp_teacher = block_log_sum_exp(teacher, classes, inverse_temperature);
  return row;
}

// KL_n = Σ_k p_k·(log p_k − log q_k), computed by the whole block.
__device__ double block_kl(const float* student, const float* teacher, std::int64_t classes,
                           const KlRow& row) {
  double kl = 0.0;
  for (std::int64_t k = threadIdx.x; k < classes; k += kBlockSize) {
    const double log_p =
        static_cast<double>(row.inverse_temperature * teacher[k]) - row.log_sum_exp_teacher;
    const double log_q =
        static_cast<double>(row.inverse_temperature * student[k]) - row.log_sum_exp_student;
    kl += exp(log_p) * (log_p - log_q);
  }
  return block_sum(kl);
}

__global__ void kl_div_rows_kernel(const float* student, const float* teacher, std::int64_t classes,
                                   double temperature, double* row_losses) {
  const std::int64_t row_index = blockIdx.x;
  const float* student_row = student + row_index * classes;
  const float* teacher_row = teacher + row_index * classes;
  const KlRow row = kl_row(student_row, teacher_row, classes, temperature);
  const double kl = block_kl(student_row, teacher_row, classes, row);
  if (threadIdx.x == 0) row_losses[row_index] = temperature * temperature * kl;
}

// d/d student_k = (T/N)·g·(q_k − p_k);  d/d teacher_k = (T/N)·g·p_k·((log p_k − log q_k) − KL_n)
__global__ void kl_div_backward_kernel(const float* student, const float* teacher,
                                       const float* grad_loss, std::int64_t rows,
                                       std::int64_t classes, double temperature,
                                       float* grad_student, float* grad_teacher, float beta) {
  const std::int64_t row_index = blockIdx.x;
  const float* student_row = student + row_index * classes;
  const float* teacher_row = teacher + row_index * classes;
  const KlRow row = kl_row(student_row, teacher_row, classes, temperature);
  const double kl =
      grad_teacher != nullptr ? block_kl(student_row, teacher_row, classes, row) : 0.0;
  const double scale = static_cast<double>(grad_loss[0]) * temperature / static_cast<double>(rows);
  for (std::int64_t k = threadIdx.x; k < classes; k += kBlockSize) {
    const double log_p =
        static_cast<double>(row.inverse_temperature * teacher_row[k]) - row.log_sum_exp_teacher;
    const double log_q =
        static_cast<double>(row.inverse_temperature * student_row[k]) - row.log_sum_exp_student;
    const double p = exp(log_p);
    const std::int64_t index = row_index * classes + k;
    if (grad_student != nullptr) {
      blend(&grad_student[index], static_cast<float>(scale * (exp(log_q) - p)), beta);
    }
    if (grad_teacher != nullptr) {
      blend(&grad_teacher[index], static_cast<float>(scale * p * ((log_p - log_q) - kl)), beta);
    }
  }
}

__global__ void mse_backward_kernel(const float* a, const float* b, const float* grad_loss,
                                    std::int64_t count, float* grad_a, float* grad_b, float beta) {
  const float scale = 2.0f * grad_loss[0] / static_cast<float>(count);
  MD_GRID_STRIDE_LOOP(i, count) {
    const float gradient = scale * (a[i] - b[i]);
    if (grad_a != nullptr) blend(&grad_a[i], gradient, beta);
    if (grad_b != nullptr) blend(&grad_b[i], -gradient, beta);
  }
}

unsigned int row_blocks(std::int64_t rows) {
  return static_cast<unsigned int>(rows);
}

}  // namespace

void cross_entropy_rows(const float* logits, const std::int32_t* labels, std::int64_t rows,
                        std::int64_t classes, double label_smoothing, double* row_losses,
                        cudaStream_t stream) {
  if (rows == 0) return;
  cross_entropy_rows_kernel<<<row_blocks(rows), kBlockSize, 0, stream>>>(
      logits, labels, classes, label_smoothing, row_losses);
  MD_CUDA_CHECK(cudaGetLastError());
}

void cross_entropy_backward(const float* logits, const std::int32_t* labels, const float* grad_loss,
                            std::int64_t rows, std::int64_t classes, double label_smoothing,
                            float* grad_logits, float beta, cudaStream_t stream) {
  if (rows == 0) return;
  cross_entropy_backward_kernel<<<row_blocks(rows), kBlockSize, 0, stream>>>(
      logits, labels, grad_loss, rows, classes, label_smoothing, grad_logits, beta);
  MD_CUDA_CHECK(cudaGetLastError());
}

void kl_div_rows(const float* student, const float* teacher, std::int64_t rows,
                 std::int64_t classes, double temperature, double* row_losses,
                 cudaStream_t stream) {
  if (rows == 0) return;
  kl_div_rows_kernel<<<row_blocks(rows), kBlockSize, 0, stream>>>(student, teacher, classes,
                                                                  temperature, row_losses);
  MD_CUDA_CHECK(cudaGetLastError());
}

void kl_div_backward(const float* student, const float* teacher, const float* grad_loss,
                     std::int64_t rows, std::int64_t classes, double temperature,
                     float* grad_student, float* grad_teacher, float beta, cudaStream_t stream) {
  if (rows == 0) return;
  kl_div_backward_kernel<<<row_blocks(rows), kBlockSize, 0, stream>>>(
      student, teacher, grad_loss, rows, classes, temperature, grad_student, grad_teacher, beta);
  MD_CUDA_CHECK(cudaGetLastError());
}

void mse_backward(const float* a, const float* b, const float* grad_loss, std::int64_t count,
                  float* grad_a, float* grad_b, float beta, cudaStream_t stream) {
  if (count == 0) return;
  mse_backward_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(a, b, grad_loss, count, grad_a,
                                                                  grad_b, beta);
  MD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace md::cuda::kernels
