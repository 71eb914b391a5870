// Losses on the CPU, means over the batch written to a scalar, forward and backward:
// cross entropy with label smoothing (PyTorch's F.cross_entropy(label_smoothing=s), mean
// reduction), the temperature-scaled KL divergence of the distillation loss (gradients to both
// the student and the teacher logits), and the mean squared error. Each row is computed in
// double (a stable log-sum-exp); row losses are added in row order, so the result does not
// depend on the thread count.
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_common.h"

namespace md::cpu {
namespace {

struct Logits {
  std::int64_t batch = 0;
  std::int64_t classes = 0;
};

Logits logits_of(const char* op, const char* name, const Tensor& logits) {
  MD_CHECK(logits.ndim() == 2 && logits.dim(0) > 0 && logits.dim(1) > 0, "cpu ", op, ": ", name,
           " ", logits.describe(), " is not a non-empty (N, K)");
  return Logits{logits.dim(0), logits.dim(1)};
}

void check_labels(const char* op, const Tensor& labels, const Logits& shape) {
  check_tensor(op, "labels", labels, DType::Int32, Shape{shape.batch});
  const std::int32_t* values = labels.data<std::int32_t>();
  for (std::int64_t row = 0; row < shape.batch; ++row) {
    MD_CHECK(values[row] >= 0 && values[row] < shape.classes, "cpu ", op, ": label ", values[row],
             " of row ", row, " is outside [0, ", shape.classes, ")");
  }
}

// log Σ_k exp(scale · x[k]), stable.
template <typename T>
double log_sum_exp(const T* x, std::int64_t width, double scale) {
  double maximum = scale * static_cast<double>(x[0]);
  for (std::int64_t k = 1; k < width; ++k)
    maximum = std::max(maximum, scale * static_cast<double>(x[k]));
  double total = 0.0;
  for (std::int64_t k = 0; k < width; ++k)
    total += std::exp(scale * static_cast<double>(x[k]) - maximum);
  return maximum + std::log(total);
}

// Σ of per-row values computed in parallel and added in row order.
template <typename RowValue>
double sum_rows(std::int64_t rows, std::int64_t row_work, const RowValue& row_value) {
  std::vector<double> values(static_cast<std::size_t>(rows), 0.0);
  parallel_for(rows, row_work,
               [&](std::int64_t row) { values[static_cast<std::size_t>(row)] = row_value(row); });
  double total = 0.0;
  for (double value : values) total += value;
  return total;
}

template <typename T>
T upstream_scalar(const char* op, const Tensor& grad_loss) {
  check_scalar(op, "grad_loss", grad_loss, dtype_of<T>());
  return grad_loss.data<T>()[0];
}

// KL_n = Σ_k p_t (log p_t − log p_s) for one row, with p = softmax(logits / T).
template <typename T>
double kl_row(const T* student, const T* teacher, std::int64_t classes,
              double inverse_temperature) {
  const double student_lse = log_sum_exp(student, classes, inverse_temperature);
  const double teacher_lse = log_sum_exp(teacher, classes, inverse_temperature);
  double total = 0.0;
  for (std::int64_t k = 0; k < classes; ++k) {
    const double log_teacher = inverse_temperature * static_cast<double>(teacher[k]) - teacher_lse;
    const double log_student = inverse_temperature * static_cast<double>(student[k]) - student_lse;
    total += std::exp(log_teacher) * (log_teacher - log_student);
  }
  return total;
}

}  // namespace

void CpuBackend::cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss,
                                       double label_smoothing) {
  const char* op = "cross_entropy_forward";
  dispatch_float(logits.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "logits", logits, logits.dtype());
    const Logits shape = logits_of(op, "logits", logits);
    check_labels(op, labels, shape);
    check_scalar(op, "loss", loss, logits.dtype());
    MD_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, "cpu ", op, ": label smoothing ",
             label_smoothing, " is outside [0, 1]");
    const T* input = logits.data<T>();
    const std::int32_t* targets = labels.data<std::int32_t>();
    const double uniform = label_smoothing / static_cast<double>(shape.classes);
    const double total = sum_rows(shape.batch, 4 * shape.classes, [&](std::int64_t row) {
      const T* x = input + row * shape.classes;
      const double lse = log_sum_exp(x, shape.classes, 1.0);
      double row_sum = 0.0;
      for (std::int64_t k = 0; k < shape.classes; ++k) row_sum += static_cast<double>(x[k]);
      // −Σ_k target_k log p_k with target = (1 − s)·onehot + s/K
      return lse - (1.0 - label_smoothing) * static_cast<double>(x[targets[row]]) -
             uniform * row_sum;
    });
    loss.data<T>()[0] = static_cast<T>(total / static_cast<double>(shape.batch));
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& labels,
                                        const Tensor& grad_loss, Tensor& grad_logits,
                                        double label_smoothing, Write write) {
  const char* op = "cross_entropy_backward";
  dispatch_float(logits.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "logits", logits, logits.dtype());
    const Logits shape = logits_of(op, "logits", logits);
    check_labels(op, labels, shape);
    check_tensor(op, "grad_logits", grad_logits, logits.dtype(), logits.shape());
    const double scale =
        static_cast<double>(upstream_scalar<T>(op, grad_loss)) / static_cast<double>(shape.batch);
    const T* input = logits.data<T>();
    const std::int32_t* targets = labels.data<std::int32_t>();
    T* output = grad_logits.data<T>();
    const double uniform = label_smoothing / static_cast<double>(shape.classes);
    parallel_for(shape.batch, 4 * shape.classes, [&](std::int64_t row) {
      const T* x = input + row * shape.classes;
      T* out = output + row * shape.classes;
      const double lse = log_sum_exp(x, shape.classes, 1.0);
      for (std::int64_t k = 0; k < shape.classes; ++k) {
        const double target = uniform + (k == targets[row] ? 1.0 - label_smoothing : 0.0);
        const double probability = std::exp(static_cast<double>(x[k]) - lse);
        write_value(out[k], static_cast<T>(scale * (probability - target)), write);
      }
    });
  });
}

void CpuBackend::kl_div_forward(const Tensor& student, const Tensor& teacher, Tensor& loss,
                                double temperature) {
  const char* op = "kl_div_forward";
  dispatch_float(student.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "student", student, student.dtype());
    const Logits shape = logits_of(op, "student", student);
    check_tensor(op, "teacher", teacher, student.dtype(), student.shape());
    check_scalar(op, "loss", loss, student.dtype());
    MD_CHECK(temperature > 0.0, "cpu ", op, ": temperature ", temperature, " is not positive");
    const T* student_data = student.data<T>();
    const T* teacher_data = teacher.data<T>();
    const double total = sum_rows(shape.batch, 8 * shape.classes, [&](std::int64_t row) {
      return kl_row(student_data + row * shape.classes, teacher_data + row * shape.classes,
                    shape.classes, 1.0 / temperature);
    });
    loss.data<T>()[0] =
        static_cast<T>(temperature * temperature * total / static_cast<double>(shape.batch));
  });
}

void CpuBackend::kl_div_backward(const Tensor& student, const Tensor& teacher,
                                 const Tensor& grad_loss, Tensor& grad_student,
                                 Tensor& grad_teacher, double temperature, Write write) {
  const char* op = "kl_div_backward";
  dispatch_float(student.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "student", student, student.dtype());
    const Logits shape = logits_of(op, "student", student);
    check_tensor(op, "teacher", teacher, student.dtype(), student.shape());
    if (grad_student.defined()) {
      check_tensor(op, "grad_student", grad_student, student.dtype(), student.shape());
    }
    if (grad_teacher.defined()) {
      check_tensor(op, "grad_teacher", grad_teacher, student.dtype(), student.shape());
    }
    MD_CHECK(temperature > 0.0, "cpu ", op, ": temperature ", temperature, " is not positive");
    // d/d student = T/N · (p_s − p_t);  d/d teacher = T/N · p_t ⊙ (log p_t − log p_s − KL_n)
    const double scale = static_cast<double>(upstream_scalar<T>(op, grad_loss)) * temperature /
                         static_cast<double>(shape.batch);
    const double inverse_temperature = 1.0 / temperature;
    const T* student_data = student.data<T>();
    const T* teacher_data = teacher.data<T>();
    T* student_out = grad_student.defined() ? grad_student.data<T>() : nullptr;
    T* teacher_out = grad_teacher.defined() ? grad_teacher.data<T>() : nullptr;
    parallel_for(shape.batch, 8 * shape.classes, [&](std::int64_t row) {
      const std::int64_t offset = row * shape.classes;
      const T* s = student_data + offset;
      const T* t = teacher_data + offset;
      const double student_lse = log_sum_exp(s, shape.classes, inverse_temperature);
      const double teacher_lse = log_sum_exp(t, shape.classes, inverse_temperature);
      const double kl =
          teacher_out != nullptr ? kl_row(s, t, shape.classes, inverse_temperature) : 0.0;
      for (std::int64_t k = 0; k < shape.classes; ++k) {
        const double log_student = inverse_temperature * static_cast<double>(s[k]) - student_lse;
        const double log_teacher = inverse_temperature * static_cast<double>(t[k]) - teacher_lse;
        const double p_student = std::exp(log_student);
        const double p_teacher = std::exp(log_teacher);
        if (student_out != nullptr) {
          write_value(student_out[offset + k], static_cast<T>(scale * (p_student - p_teacher)),
                      write);
        }
        if (teacher_out != nullptr) {
          write_value(teacher_out[offset + k],
                      static_cast<T>(scale * p_teacher * (log_teacher - log_student - kl)), write);
        }
      }
    });
  });
}

void CpuBackend::mse_forward(const Tensor& a, const Tensor& b, Tensor& loss) {
  const char* op = "mse_forward";
  dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "a", a, a.dtype());
    check_tensor(op, "b", b, a.dtype(), a.shape());
    check_scalar(op, "loss", loss, a.dtype());
    MD_CHECK(a.numel() > 0, "cpu ", op, ": empty input ", a.describe());
    const T* left = a.data<T>();
    const T* right = b.data<T>();
    const double total = ordered_sum(a.numel(), [&](std::int64_t i) {
      const double difference = static_cast<double>(left[i]) - static_cast<double>(right[i]);
      return difference * difference;
    });
    loss.data<T>()[0] = static_cast<T>(total / static_cast<double>(a.numel()));
  });
}

void CpuBackend::mse_backward(const Tensor& a, const Tensor& b, const Tensor& grad_loss,
                              Tensor& grad_a, Tensor& grad_b, Write write) {
  const char* op = "mse_backward";
  dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "a", a, a.dtype());
    check_tensor(op, "b", b, a.dtype(), a.shape());
    MD_CHECK(a.numel() > 0, "cpu ", op, ": empty input ", a.describe());
    if (grad_a.defined()) check_tensor(op, "grad_a", grad_a, a.dtype(), a.shape());
    if (grad_b.defined()) check_tensor(op, "grad_b", grad_b, a.dtype(), a.shape());
    const T scale = static_cast<T>(2.0 * static_cast<double>(upstream_scalar<T>(op, grad_loss)) /
                                   static_cast<double>(a.numel()));
    const T* left = a.data<T>();
    const T* right = b.data<T>();
    T* left_out = grad_a.defined() ? grad_a.data<T>() : nullptr;
    T* right_out = grad_b.defined() ? grad_b.data<T>() : nullptr;
    parallel_for(a.numel(), 1, [&](std::int64_t i) {
      const T value = scale * (left[i] - right[i]);
      if (left_out != nullptr) write_value(left_out[i], value, write);
      if (right_out != nullptr) write_value(right_out[i], -value, write);
    });
  });
}

}  // namespace md::cpu
