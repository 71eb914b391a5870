// The HTML page of the sweep report: tables as HTML, figures as inline SVG with their own axes,
// ticks, labels and legends. One colour per group, the same in every figure (Tableau 10).
// No script at all: the page is static, so it loads anywhere with no console message.
#include "html_report.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "text_format.h"

namespace md::analysis {

namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const char* const kPalette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
const char* const kInk = "#333";
const char* const kGrid = "#e4e4e4";

std::string color_of(std::size_t index) {
  return kPalette[index % std::size(kPalette)];
}

std::string num(double value, int decimals = 1) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

std::string percent(double fraction, int decimals = 2) {
  return std::isnan(fraction) ? std::string(kDash) : num(100.0 * fraction, decimals);
}

std::string signed_pp(double fraction) {
  if (std::isnan(fraction)) return kDash;
  std::string text = num(100.0 * fraction, 2);
  if (text[0] == '-') return "\xe2\x88\x92" + text.substr(1);  // U+2212 minus
  return "+" + text;
}

std::string p_text(double p) {
  if (std::isnan(p)) return kDash;
  if (p < 0.001) return "&lt; 0.001";
  return num(p, 3);
}

// "p = 0.123" or "p < 0.001".
std::string p_phrase(double p) {
  if (std::isnan(p)) return std::string("p ") + kDash;
  return p < 0.001 ? "p &lt; 0.001" : "p = " + num(p, 3);
}

std::string group_label(const SweepSummary& summary, const GroupSummary& group) {
  if (summary.group_by.empty()) return "all trials";
  std::string label;
  for (std::size_t i = 0; i < group.key_values.size(); ++i) {
    if (i > 0) label += ", ";
    if (summary.group_by.size() > 1) label += summary.group_by[i] + "=";
    label += group.key_values[i].empty() ? std::string(kDash) : group.key_values[i];
  }
  return label;
}

// ---- axes

struct Axis {
  double low = 0.0;
  double high = 1.0;
  std::vector<double> ticks;
  int decimals = 0;
};

Axis nice_axis(double low, double high, int target_ticks = 5) {
  if (!std::isfinite(low) || !std::isfinite(high)) {
    low = 0.0;
    high = 1.0;
  }
  if (high - low < 1e-12) {
    const double pad = std::max(std::abs(low) * 0.05, 0.5);
    low -= pad;
    high += pad;
  }
  const double raw = (high - low) / target_ticks;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double factor : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    step = factor * magnitude;
    if (raw <= step) break;
  }
  Axis axis;
  axis.low = std::floor(low / step) * step;
  axis.high = std::ceil(high / step) * step;
  for (double tick = axis.low; tick <= axis.high + step * 1e-6; tick += step) {
    axis.ticks.push_back(std::abs(tick) < step * 1e-9 ? 0.0 : tick);
  }
  axis.decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  if (std::abs(step / magnitude - 2.5) < 1e-9) ++axis.decimals;
  return axis;
}

struct Frame {
  double width = 560;
  double height = 340;
  double left = 64;
  double right = 16;
  double top = 16;
  double bottom = 52;
  Axis x;
  Axis y;
  double px(double value) const {
    return left + (value - x.low) / (x.high - x.low) * (width - left - right);
  }
  double py(double value) const {
    return height - bottom - (value - y.low) / (y.high - y.low) * (height - top - bottom);
  }
};

void svg_open(std::ostringstream& out, const Frame& frame, const std::string& title) {
  out << "<svg role=\"img\" width=\"" << num(frame.width, 0) << "\" height=\""
      << num(frame.height, 0) << "\" viewBox=\"0 0 " << num(frame.width, 0) << " "
      << num(frame.height, 0) << "\"><title>" << html_escape(title) << "</title>\n";
}

// Grid lines, tick labels, the frame and the axis titles.
void draw_axes(std::ostringstream& out, const Frame& frame, const std::string& x_label,
               const std::string& y_label, bool x_ticks = true) {
  const double x0 = frame.left;
  const double x1 = frame.width - frame.right;
  const double y0 = frame.height - frame.bottom;
  const double y1 = frame.top;
  for (double tick : frame.y.ticks) {
    const double y = frame.py(tick);
    out << "<line x1=\"" << num(x0) << "\" x2=\"" << num(x1) << "\" y1=\"" << num(y) << "\" y2=\""
        << num(y) << "\" stroke=\"" << kGrid << "\"/>"
        << "<text x=\"" << num(x0 - 6) << "\" y=\"" << num(y + 4)
        << "\" text-anchor=\"end\" class=\"tick\">" << num(tick, frame.y.decimals) << "</text>\n";
  }
  if (x_ticks) {
    for (double tick : frame.x.ticks) {
      const double x = frame.px(tick);
      out << "<line x1=\"" << num(x) << "\" x2=\"" << num(x) << "\" y1=\"" << num(y0) << "\" y2=\""
          << num(y1) << "\" stroke=\"" << kGrid << "\"/>"
          << "<line x1=\"" << num(x) << "\" x2=\"" << num(x) << "\" y1=\"" << num(y0) << "\" y2=\""
          << num(y0 + 5) << "\" stroke=\"" << kInk << "\"/>"
          << "<text x=\"" << num(x) << "\" y=\"" << num(y0 + 18)
          << "\" text-anchor=\"middle\" class=\"tick\">" << num(tick, frame.x.decimals)
          << "</text>\n";
    }
  }
  out << "<rect x=\"" << num(x0) << "\" y=\"" << num(y1) << "\" width=\"" << num(x1 - x0)
      << "\" height=\"" << num(y0 - y1) << "\" fill=\"none\" stroke=\"" << kInk << "\"/>\n";
  out << "<text x=\"" << num((x0 + x1) / 2) << "\" y=\"" << num(frame.height - 10)
      << "\" text-anchor=\"middle\" class=\"label\">" << html_escape(x_label) << "</text>\n";
  out << "<text transform=\"translate(16," << num((y0 + y1) / 2)
      << ") rotate(-90)\" text-anchor=\"middle\" class=\"label\">" << html_escape(y_label)
      << "</text>\n";
}

// One legend entry per group: its label and colour.
std::vector<std::pair<std::string, std::string>> group_legend(const SweepSummary& summary) {
  std::vector<std::pair<std::string, std::string>> legend;
  for (std::size_t g = 0; g < summary.groups.size(); ++g) {
    legend.emplace_back(group_label(summary, summary.groups[g]), color_of(g));
  }
  return legend;
}

// A legend in the top-left or bottom-right corner of the plot area.
void draw_legend(std::ostringstream& out, const Frame& frame,
                 const std::vector<std::pair<std::string, std::string>>& entries,
                 bool bottom_right) {
  if (entries.empty()) return;
  std::size_t longest = 0;
  for (const auto& entry : entries) longest = std::max(longest, entry.first.size());
  const double box_width = 34.0 + 7.0 * static_cast<double>(std::min<std::size_t>(longest, 40));
  const double box_height = 8.0 + 18.0 * static_cast<double>(entries.size());
  double x = frame.left + 8;
  double y = frame.top + 8;
  if (bottom_right) {
    x = frame.width - frame.right - 8 - box_width;
    y = frame.height - frame.bottom - 8 - box_height;
  }
  out << "<rect x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\"" << num(box_width)
      << "\" height=\"" << num(box_height)
      << "\" fill=\"#fff\" fill-opacity=\"0.9\" stroke=\"#ccc\"/>\n";
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const double row = y + 14 + 18.0 * static_cast<double>(i);
    out << "<rect x=\"" << num(x + 8) << "\" y=\"" << num(row - 8) << "\" width=\"16\" "
        << "height=\"10\" fill=\"" << entries[i].second << "\"/><text x=\"" << num(x + 30)
        << "\" y=\"" << num(row + 1) << "\" class=\"legend\">" << html_escape(entries[i].first)
        << "</text>\n";
  }
}

// ---- figures

Statistic statistic_of(const std::vector<double>& values) {
  return mean_and_std(values);
}

// Mean test accuracy of the final head per epoch, ±1 sd band, one line per group.
std::string learning_curves(const SweepSummary& summary) {
  struct Curve {
    std::vector<double> mean, low, high;
  };
  std::vector<Curve> curves;
  std::size_t epochs = 0;
  double low = 1e300;
  double high = -1e300;
  for (const GroupSummary& group : summary.groups) {
    Curve curve;
    std::size_t length = 0;
    for (const TrialRecord& trial : group.trials)
      length = std::max(length, trial.final_curve.size());
    for (std::size_t epoch = 0; epoch < length; ++epoch) {
      std::vector<double> values;
      for (const TrialRecord& trial : group.trials) {
        if (trial.status == io::status_name(io::TrialStatus::Failed) ||
            trial.status == io::status_name(io::TrialStatus::Diverged))
          continue;
        if (epoch < trial.final_curve.size()) values.push_back(100.0 * trial.final_curve[epoch]);
      }
      const Statistic statistic = statistic_of(values);
      curve.mean.push_back(statistic.mean);
      curve.low.push_back(statistic.mean - statistic.std_dev);
      curve.high.push_back(statistic.mean + statistic.std_dev);
      if (!std::isnan(statistic.mean)) {
        low = std::min(low, statistic.mean - statistic.std_dev);
        high = std::max(high, statistic.mean + statistic.std_dev);
      }
    }
    epochs = std::max(epochs, length);
    curves.push_back(std::move(curve));
  }
  if (epochs == 0) return "<p class=\"note\">No /epoch rows yet.</p>\n";
  Frame frame;
  frame.x = nice_axis(1.0, std::max<double>(2.0, static_cast<double>(epochs)), 6);
  frame.x.low = 1.0;
  frame.x.ticks.erase(std::remove_if(frame.x.ticks.begin(), frame.x.ticks.end(),
                                     [](double tick) { return tick < 1.0; }),
                      frame.x.ticks.end());
  if (frame.x.ticks.empty() || frame.x.ticks.front() > 1.0)
    frame.x.ticks.insert(frame.x.ticks.begin(), 1.0);
  frame.y = nice_axis(low, high);
  std::ostringstream out;
  svg_open(out, frame, "Learning curves: test accuracy of the final head");
  draw_axes(out, frame, "epoch", "test accuracy, final head (%)");
  std::vector<std::pair<std::string, std::string>> legend;
  for (std::size_t g = 0; g < curves.size(); ++g) {
    const Curve& curve = curves[g];
    const std::string color = color_of(g);
    legend.emplace_back(group_label(summary, summary.groups[g]), color);
    std::string band_top, band_bottom, line;
    for (std::size_t e = 0; e < curve.mean.size(); ++e) {
      if (std::isnan(curve.mean[e])) continue;
      const double x = frame.px(static_cast<double>(e + 1));
      band_top += num(x) + "," + num(frame.py(curve.high[e])) + " ";
      line += num(x) + "," + num(frame.py(curve.mean[e])) + " ";
    }
    for (std::size_t e = curve.mean.size(); e-- > 0;) {
      if (std::isnan(curve.mean[e])) continue;
      band_bottom +=
          num(frame.px(static_cast<double>(e + 1))) + "," + num(frame.py(curve.low[e])) + " ";
    }
    out << "<polygon points=\"" << band_top << band_bottom << "\" fill=\"" << color
        << "\" fill-opacity=\"0.18\" stroke=\"none\"/>\n";
    out << "<polyline points=\"" << line << "\" fill=\"none\" stroke=\"" << color
        << "\" stroke-width=\"2.2\"/>\n";
    if (curve.mean.size() <= 40) {
      for (std::size_t e = 0; e < curve.mean.size(); ++e) {
        if (std::isnan(curve.mean[e])) continue;
        out << "<circle cx=\"" << num(frame.px(static_cast<double>(e + 1))) << "\" cy=\""
            << num(frame.py(curve.mean[e])) << "\" r=\"2.6\" fill=\"" << color << "\"/>";
      }
      out << "\n";
    }
  }
  draw_legend(out, frame, legend, true);
  out << "</svg>\n";
  return out.str();
}

// Last-epoch accuracy of each head, the final head and the ensemble: dots with ±1 sd whiskers,
// the groups side by side within each head.
std::string head_chart(const SweepSummary& summary) {
  std::vector<std::string> columns;
  for (int head = 0; head + 1 < summary.heads; ++head)
    columns.push_back("head " + std::to_string(head));
  columns.emplace_back("final");
  columns.emplace_back("ensemble");
  auto value = [&](const GroupSummary& group, std::size_t column) {
    if (column + 2 < columns.size()) return group.auxiliary_last[column];
    const auto& last = group.last;
    auto found = last.find(column + 2 == columns.size() ? "acc_final" : "acc_ensemble");
    return found == last.end() ? Statistic{} : found->second;
  };
  double low = 1e300;
  double high = -1e300;
  for (const GroupSummary& group : summary.groups) {
    for (std::size_t c = 0; c < columns.size(); ++c) {
      const Statistic s = value(group, c);
      if (std::isnan(s.mean)) continue;
      low = std::min(low, 100.0 * (s.mean - s.std_dev));
      high = std::max(high, 100.0 * (s.mean + s.std_dev));
    }
  }
  if (low > high) return "<p class=\"note\">No accuracies yet.</p>\n";
  Frame frame;
  frame.width = std::max(560.0, 90.0 * static_cast<double>(columns.size()) + 80.0);
  frame.x.low = 0.0;
  frame.x.high = static_cast<double>(columns.size());
  frame.y = nice_axis(low, high);
  std::ostringstream out;
  svg_open(out, frame, "Accuracy of every head, last epoch");
  draw_axes(out, frame, "classifier", "test accuracy, last epoch (%)", false);
  const double y0 = frame.height - frame.bottom;
  for (std::size_t c = 0; c < columns.size(); ++c) {
    const double x = frame.px(static_cast<double>(c) + 0.5);
    out << "<text x=\"" << num(x) << "\" y=\"" << num(y0 + 18)
        << "\" text-anchor=\"middle\" class=\"tick\">" << columns[c] << "</text>\n";
    if (c > 0) {
      const double xs = frame.px(static_cast<double>(c));
      out << "<line x1=\"" << num(xs) << "\" x2=\"" << num(xs) << "\" y1=\"" << num(y0)
          << "\" y2=\"" << num(frame.top) << "\" stroke=\"" << kGrid << "\"/>\n";
    }
    const std::size_t groups = summary.groups.size();
    for (std::size_t g = 0; g < groups; ++g) {
      const Statistic s = value(summary.groups[g], c);
      if (std::isnan(s.mean)) continue;
      const double offset = (static_cast<double>(g) + 0.5) / static_cast<double>(groups) - 0.5;
      const double gx = frame.px(static_cast<double>(c) + 0.5 + 0.7 * offset);
      const std::string color = color_of(g);
      out << "<line x1=\"" << num(gx) << "\" x2=\"" << num(gx) << "\" y1=\""
          << num(frame.py(100.0 * (s.mean - s.std_dev))) << "\" y2=\""
          << num(frame.py(100.0 * (s.mean + s.std_dev))) << "\" stroke=\"" << color
          << "\" stroke-width=\"2\"/><circle cx=\"" << num(gx) << "\" cy=\""
          << num(frame.py(100.0 * s.mean)) << "\" r=\"4.5\" fill=\"" << color << "\"><title>"
          << html_escape(group_label(summary, summary.groups[g])) << " " << columns[c] << ": "
          << num(100.0 * s.mean, 2) << " \xc2\xb1 " << num(100.0 * s.std_dev, 2)
          << "</title></circle>\n";
    }
  }
  draw_legend(out, frame, group_legend(summary), true);
  out << "</svg>\n";
  return out.str();
}

// One point per trial: last-epoch accuracy of the leading metric against GPU-hours, or wall
// hours when no trial used a GPU.
std::string cost_chart(const SweepSummary& summary) {
  bool any_gpu = false;
  for (const GroupSummary& group : summary.groups) {
    for (const TrialRecord& trial : group.trials) any_gpu = any_gpu || trial.gpu_hours > 0.0;
  }
  // Wall time of a CPU run in hours, or in minutes when every trial took less than an hour.
  double longest_wall_s = 0.0;
  for (const GroupSummary& group : summary.groups) {
    for (const TrialRecord& trial : group.trials) {
      if (!std::isnan(trial.wall_s)) longest_wall_s = std::max(longest_wall_s, trial.wall_s);
    }
  }
  const bool minutes = !any_gpu && longest_wall_s < 3600.0;
  const double minutes_scale = minutes ? 60.0 : 1.0;
  struct Point {
    double x, y;
    std::size_t group;
    std::string id;
  };
  std::vector<Point> points;
  double x_high = 0.0;
  double y_low = 1e300;
  double y_high = -1e300;
  for (std::size_t g = 0; g < summary.groups.size(); ++g) {
    for (const TrialRecord& trial : summary.groups[g].trials) {
      auto found = trial.last.find(summary.metric);
      if (found == trial.last.end() || std::isnan(found->second)) continue;
      const double x = any_gpu ? trial.gpu_hours : trial.wall_s / 3600.0 * minutes_scale;
      if (std::isnan(x)) continue;
      points.push_back({x, 100.0 * found->second, g, trial.trial_id});
      x_high = std::max(x_high, x);
      y_low = std::min(y_low, 100.0 * found->second);
      y_high = std::max(y_high, 100.0 * found->second);
    }
  }
  if (points.empty()) return "<p class=\"note\">No trial has an accuracy yet.</p>\n";
  Frame frame;
  frame.x = nice_axis(0.0, x_high > 0.0 ? x_high * 1.05 : 1.0);
  frame.y = nice_axis(y_low, y_high);
  std::ostringstream out;
  const std::string x_label = any_gpu   ? "GPU-hours per trial"
                              : minutes ? "wall-clock minutes per trial (CPU run: no GPU-hours)"
                                        : "wall-clock hours per trial (CPU run: no GPU-hours)";
  svg_open(out, frame, "Accuracy against cost");
  draw_axes(out, frame, x_label, summary.metric + ", last epoch (%)");
  for (const Point& point : points) {
    out << "<circle cx=\"" << num(frame.px(point.x)) << "\" cy=\"" << num(frame.py(point.y))
        << "\" r=\"5\" fill=\"" << color_of(point.group)
        << "\" fill-opacity=\"0.85\" stroke=\"#fff\"><title>" << html_escape(point.id) << ": "
        << num(point.y, 2) << "</title></circle>\n";
  }
  draw_legend(out, frame, group_legend(summary), true);
  out << "</svg>\n";
  return out.str();
}

// The colour of the group whose value of the compared key is `value` (when the report groups
// by that key alone), else the ink colour.
std::string comparison_color(const SweepSummary& summary, const std::string& value) {
  if (summary.group_by.size() != 1 || !summary.comparison ||
      summary.group_by[0] != summary.comparison->spec.key) {
    return kInk;
  }
  for (std::size_t g = 0; g < summary.groups.size(); ++g) {
    if (summary.groups[g].key_values[0] == value) return color_of(g);
  }
  return kInk;
}

// Forest plot of the leading metric's comparisons: mean difference and its interval per row,
// a dashed line at zero, the numbers on the right.
std::string forest_plot(const SweepSummary& summary) {
  const ComparisonReport& report = *summary.comparison;
  std::vector<const ComparisonRow*> rows;
  for (const ComparisonRow& row : report.rows) {
    if (row.metric == report.lead_metric) rows.push_back(&row);
  }
  if (rows.empty()) return "<p class=\"note\">No comparison rows.</p>\n";
  double low = 0.0;
  double high = 0.0;
  for (const ComparisonRow* row : rows) {
    for (double value : {row->mean_difference, row->interval.low, row->interval.high}) {
      if (std::isnan(value)) continue;
      low = std::min(low, 100.0 * value);
      high = std::max(high, 100.0 * value);
    }
  }
  // Room on both sides, so that the zero line never lies on the frame.
  const double pad = 0.08 * std::max(high - low, 0.1);
  low -= pad;
  high += pad;
  Frame frame;
  frame.width = 1000;
  frame.left = 250;
  frame.right = 340;
  frame.top = 12;
  frame.height = frame.top + frame.bottom + 30.0 * static_cast<double>(rows.size());
  frame.x = nice_axis(low, high);
  frame.y.low = 0.0;
  frame.y.high = static_cast<double>(rows.size());
  std::ostringstream out;
  svg_open(out, frame, "Forest plot: difference to the reference");
  draw_axes(out, frame,
            "difference to " + report.spec.reference + " in " + report.lead_metric +
                " (percentage points), " + num(100.0 * report.settings.confidence, 0) +
                "% bootstrap interval",
            "");
  const double zero = frame.px(0.0);
  out << "<line x1=\"" << num(zero) << "\" x2=\"" << num(zero) << "\" y1=\"" << num(frame.top)
      << "\" y2=\"" << num(frame.height - frame.bottom)
      << "\" stroke=\"#555\" stroke-dasharray=\"5,4\" stroke-width=\"1.3\"/>\n";
  out << "<text x=\"" << num(frame.width - frame.right + 8) << "\" y=\"" << num(frame.top - 1 + 10)
      << "\" class=\"tick\" font-weight=\"bold\">difference [interval], p (Holm)</text>\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const ComparisonRow& row = *rows[i];
    const double y = frame.top + 30.0 * (static_cast<double>(i) + 0.5) + 6;
    const std::string color = comparison_color(summary, row.value);
    out << "<text x=\"" << num(frame.left - 10) << "\" y=\"" << num(y + 4)
        << "\" text-anchor=\"end\" class=\"legend\">"
        << html_escape(row.value + " \xe2\x88\x92 " + report.spec.reference + " (" + row.epoch +
                       " epoch)")
        << "</text>\n";
    std::string right;
    if (row.test == "none" || std::isnan(row.mean_difference)) {
      right = "not enough pairs";
    } else {
      const double x = frame.px(100.0 * row.mean_difference);
      if (!std::isnan(row.interval.low) && !std::isnan(row.interval.high)) {
        const double a = frame.px(100.0 * row.interval.low);
        const double b = frame.px(100.0 * row.interval.high);
        out << "<line x1=\"" << num(a) << "\" x2=\"" << num(b) << "\" y1=\"" << num(y) << "\" y2=\""
            << num(y) << "\" stroke=\"" << color << "\" stroke-width=\"2.5\"/>"
            << "<line x1=\"" << num(a) << "\" x2=\"" << num(a) << "\" y1=\"" << num(y - 6)
            << "\" y2=\"" << num(y + 6) << "\" stroke=\"" << color << "\" stroke-width=\"2\"/>"
            << "<line x1=\"" << num(b) << "\" x2=\"" << num(b) << "\" y1=\"" << num(y - 6)
            << "\" y2=\"" << num(y + 6) << "\" stroke=\"" << color << "\" stroke-width=\"2\"/>";
      }
      out << "<rect x=\"" << num(x - 5) << "\" y=\"" << num(y - 5)
          << "\" width=\"10\" height=\"10\" fill=\"" << color << "\"/>\n";
      right = signed_pp(row.mean_difference) + " [" + signed_pp(row.interval.low) + ", " +
              signed_pp(row.interval.high) + "], " + p_phrase(row.p_holm) + " (" +
              (row.test == "welch" ? "Welch" : std::to_string(row.pairs) + " pairs") + ")";
    }
    out << "<text x=\"" << num(frame.width - frame.right + 8) << "\" y=\"" << num(y + 4)
        << "\" class=\"legend\">" << right << "</text>\n";
  }
  out << "</svg>\n";
  return out.str();
}

// ---- tables

void table_open(std::ostringstream& out, const std::vector<std::string>& header) {
  out << "<table><thead><tr>";
  for (const std::string& cell : header) out << "<th>" << html_escape(cell) << "</th>";
  out << "</tr></thead><tbody>\n";
}

std::string stat_cell(const Statistic& statistic) {
  if (std::isnan(statistic.mean)) return kDash;
  return num(100.0 * statistic.mean, 2) + " <span class=\"sd\">\xc2\xb1 " +
         num(100.0 * statistic.std_dev, 2) + "</span>";
}

std::string duration(double seconds) {
  if (std::isnan(seconds)) return kDash;
  if (seconds < 120.0) return num(seconds, 0) + " s";
  if (seconds < 7200.0) return num(seconds / 60.0, 1) + " min";
  return num(seconds / 3600.0, 2) + " h";
}

std::string status_summary(const GroupSummary& group) {
  std::string text;
  for (const auto& [status, count] : group.status_counts) {
    if (!text.empty()) text += ", ";
    text += std::to_string(count) + " " + (status.empty() ? std::string("unknown") : status);
  }
  return text;
}

void summary_table(std::ostringstream& out, const SweepSummary& summary) {
  const std::string& lead = summary.metric;
  const std::string second = lead == "acc_ensemble" ? "acc_final" : "acc_ensemble";
  std::vector<std::string> header;
  header.emplace_back("");
  for (const std::string& key : summary.group_by) header.push_back(key);
  if (summary.group_by.empty()) header.emplace_back("group");
  for (const std::string& column :
       {std::string("n"), std::string("status"), lead + " last", lead + " best", second + " last",
        second + " best", std::string("epochs"), std::string("wall / trial"),
        std::string("GPU-hours")}) {
    header.push_back(column);
  }
  table_open(out, header);
  bool any_in_progress = false;
  for (std::size_t g = 0; g < summary.groups.size(); ++g) {
    const GroupSummary& group = summary.groups[g];
    const bool in_progress = group.values_from == ValuesFrom::InProgress;
    any_in_progress = any_in_progress || in_progress;
    const std::string mark = in_progress ? " *" : "";
    out << "<tr><td><span class=\"swatch\" style=\"background:" << color_of(g) << "\"></span></td>";
    for (const std::string& value : group.key_values) {
      out << "<td>" << html_escape(value.empty() ? std::string(kDash) : value) << "</td>";
    }
    if (summary.group_by.empty()) out << "<td>all trials</td>";
    out << "<td class=\"num\">" << group.trials.size() << "</td><td>"
        << html_escape(status_summary(group)) << "</td>";
    for (const std::string& metric : {lead, second}) {
      auto last = group.last.find(metric);
      auto best = group.best.find(metric);
      out << "<td class=\"num\">" << (last == group.last.end() ? kDash : stat_cell(last->second))
          << mark << "</td><td class=\"num\">"
          << (best == group.best.end() ? kDash : stat_cell(best->second)) << mark << "</td>";
    }
    out << "<td class=\"num\">"
        << (std::isnan(group.epochs.mean) ? kDash : num(group.epochs.mean, 1))
        << "</td><td class=\"num\">" << duration(group.wall_s.mean) << "</td><td class=\"num\">"
        << num(group.gpu_hours, 2) << "</td></tr>\n";
  }
  out << "</tbody></table>\n";
  out << "<p class=\"note\">Accuracies in percent: mean \xc2\xb1 sample standard deviation "
         "(n \xe2\x88\x92 1) over the complete trials of a group; <i>last</i> is the last epoch, "
         "<i>best</i> the best epoch.";
  if (any_in_progress) {
    out << " * No complete trial yet: running and interrupted trials at their last epoch.";
  }
  out << "</p>\n";
}

void comparison_table(std::ostringstream& out, const ComparisonReport& report) {
  table_open(out,
             {"comparison", "metric", "epoch", "test", "pairs", "difference (pp)", "interval (pp)",
              "p (Holm)", "Wilcoxon p (Holm)", "effect size", "seeds for 80% power", "conclusion"});
  for (const ComparisonRow& row : report.rows) {
    if (row.metric != report.lead_metric && row.metric != "acc_ensemble") continue;
    const bool none = row.test == "none";
    out << "<tr><td>" << html_escape(row.value + " \xe2\x88\x92 " + report.spec.reference)
        << "</td><td>" << html_escape(row.metric) << "</td><td>" << row.epoch << "</td><td>"
        << html_escape(row.test) << "</td><td class=\"num\">" << row.pairs
        << "</td><td class=\"num\">" << (none ? kDash : signed_pp(row.mean_difference))
        << "</td><td class=\"num\">"
        << (none ? std::string(kDash)
                 : "[" + signed_pp(row.interval.low) + ", " + signed_pp(row.interval.high) + "]")
        << "</td><td class=\"num\">" << p_text(row.p_holm) << "</td><td class=\"num\">"
        << p_text(row.wilcoxon_p_holm) << "</td><td class=\"num\">"
        << (std::isnan(row.effect_size) ? std::string(kDash)
                                        : num(row.effect_size, 2) + " " + row.effect_size_kind)
        << "</td><td class=\"num\">"
        << (row.seeds_for_power < 0 ? std::string(kDash) : std::to_string(row.seeds_for_power))
        << "</td><td class=\"" << (row.conclusion == "shown" ? "shown" : "") << "\">"
        << html_escape(row.conclusion) << "</td></tr>\n";
  }
  out << "</tbody></table>\n";
}

void attention_table(std::ostringstream& out, const SweepSummary& summary) {
  std::vector<std::pair<std::size_t, const TrialRecord*>> trials;
  for (std::size_t g = 0; g < summary.groups.size(); ++g) {
    for (const TrialRecord& trial : summary.groups[g].trials) {
      if (trial.status != io::status_name(io::TrialStatus::Complete))
        trials.emplace_back(g, &trial);
    }
  }
  if (trials.empty()) {
    out << "<p class=\"note\">Every trial is complete.</p>\n";
    return;
  }
  table_open(out, {"", "trial", "group", "status", "epochs", summary.metric + " last", "error"});
  for (const auto& [g, trial] : trials) {
    auto last = trial->last.find(summary.metric);
    out << "<tr><td><span class=\"swatch\" style=\"background:" << color_of(g)
        << "\"></span></td><td>" << html_escape(trial->trial_id) << "</td><td>"
        << html_escape(group_label(summary, summary.groups[g])) << "</td><td class=\"status-"
        << html_escape(trial->status) << "\">" << html_escape(trial->status)
        << "</td><td class=\"num\">" << num(trial->epochs, 0) << "</td><td class=\"num\">"
        << (last == trial->last.end() ? std::string(kDash) : percent(last->second))
        << "</td><td class=\"error\">" << html_escape(trial->error) << "</td></tr>\n";
  }
  out << "</tbody></table>\n";
}

const char* const kStyle = R"(
body{font-family:"DejaVu Sans","Liberation Sans",Helvetica,Arial,sans-serif;color:#222;
margin:24px auto;max-width:1160px;padding:0 16px;font-size:14px;line-height:1.4}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd;
padding-bottom:3px}.meta{color:#666;margin:0 0 12px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{padding:4px 9px;border-bottom:1px solid #e6e6e6;text-align:left;vertical-align:top}
th{background:#f4f5f7;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}.sd{color:#777}.swatch{display:inline-block;width:12px;height:12px;
border-radius:2px}.note{color:#555;font-size:12.5px;margin:4px 0 8px}
.figures{display:flex;flex-wrap:wrap;gap:18px 28px}figure{margin:0}
figcaption{font-size:12.5px;color:#444;margin:2px 0 0 4px;max-width:560px}
svg{font-family:inherit;background:#fff}svg .tick{font-size:11.5px;fill:#444}
svg .label{font-size:12.5px;fill:#222}svg .legend{font-size:12px;fill:#222}
td.error{font-family:"DejaVu Sans Mono",monospace;font-size:12px;color:#a02020;max-width:520px;
word-break:break-word}.status-failed,.status-diverged{color:#b02020;font-weight:600}
.status-running{color:#2a6bb0}.shown{font-weight:600;color:#1f7a1f}
)";

}  // namespace

std::string html_escape(const std::string& text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        escaped += "&amp;";
        break;
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '"':
        escaped += "&quot;";
        break;
      case '\'':
        escaped += "&#39;";
        break;
      default:
        escaped += c;
    }
  }
  return escaped;
}

std::string html_report(const SweepSummary& summary, const std::string& generated) {
  std::ostringstream out;
  out << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      << "<title>Sweep report: " << html_escape(summary.directory) << "</title>\n<style>" << kStyle
      << "</style></head><body>\n";
  out << "<h1>Sweep report</h1>\n<p class=\"meta\"><code>" << html_escape(summary.directory)
      << "</code> \xc2\xb7 " << summary.trial_count << " trial"
      << (summary.trial_count == 1 ? "" : "s") << " in " << summary.groups.size() << " group"
      << (summary.groups.size() == 1 ? "" : "s");
  if (!summary.group_by.empty()) {
    out << ", grouped by ";
    for (std::size_t i = 0; i < summary.group_by.size(); ++i) {
      out << (i == 0 ? "" : ", ") << "<code>" << html_escape(summary.group_by[i]) << "</code>";
    }
  }
  if (!generated.empty()) out << " \xc2\xb7 " << html_escape(generated);
  out << "</p>\n";
  if (summary.trial_count == 0) {
    out << "<p>No trial logs found.</p>\n";
  } else {
    out << "<h2>Summary</h2>\n";
    summary_table(out, summary);
    if (summary.comparison) {
      const ComparisonReport& report = *summary.comparison;
      out << "<h2>Comparisons with " << html_escape(report.spec.key) << " = "
          << html_escape(report.spec.reference) << "</h2>\n<figure>" << forest_plot(summary)
          << "<figcaption>Mean difference of " << html_escape(report.lead_metric)
          << " (square) and its " << num(100.0 * report.settings.confidence, 0)
          << "% percentile bootstrap interval (" << report.settings.resamples
          << " resamples); paired on the other varying keys, Welch when unpaired. "
             "p: t-test, Holm-corrected across the comparisons.</figcaption></figure>\n";
      comparison_table(out, report);
    }
    out << "<h2>Figures</h2>\n<div class=\"figures\">\n<figure>" << learning_curves(summary)
        << "<figcaption>Learning curves: mean test accuracy of the final head per epoch, band "
           "\xc2\xb1 1 sd over the trials of each group (failed and diverged trials left "
           "out).</figcaption></figure>\n<figure>"
        << head_chart(summary)
        << "<figcaption>Accuracy of every head at the last epoch (mean \xc2\xb1 1 sd); head s "
           "is the classifier after stage s + 1, over the trials that have it as an auxiliary "
           "head.</figcaption></figure>\n<figure>"
        << cost_chart(summary)
        << "<figcaption>One point per trial: last-epoch accuracy against its cost.</figcaption>"
           "</figure>\n</div>\n";
    out << "<h2>Trials running, interrupted, failed or diverged</h2>\n";
    attention_table(out, summary);
  }
  if (!summary.skipped.empty()) {
    out << "<h2>Skipped files</h2>\n<ul>\n";
    for (const SkippedFile& skipped : summary.skipped) {
      out << "<li><code>" << html_escape(skipped.file) << "</code>: " << html_escape(skipped.reason)
          << "</li>\n";
    }
    out << "</ul>\n";
  }
  out << "</body></html>\n";
  return out.str();
}

void write_file_atomically(const std::string& path, const std::string& text) {
  const fs::path target(path);
  const fs::path temporary =
      target.parent_path() / ("." + target.filename().string() + "." +
                              std::to_string(static_cast<long>(::getpid())) + ".tmp");
  {
    std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
    MD_CHECK(file.good(), temporary.string(), ": cannot open for writing");
    file << text;
    file.flush();
    MD_CHECK(file.good(), temporary.string(), ": write failed");
  }
  std::error_code error;
  fs::rename(temporary, target, error);
  if (error) {
    fs::remove(temporary, error);
    MD_CHECK(false, path, ": cannot replace the file: ", error.message());
  }
}

}  // namespace md::analysis
