// metadistill report: aggregates a sweep's trial logs (DIR, searched recursively) into one table,
// mean ± std over the trials of each group, in Markdown, CSV or JSON (analysis/report.h), and
// with --compare KEY=REFERENCE paired comparisons against a reference (analysis/compare.h). The
// report goes to standard output; skipped files and an empty directory are warnings on stderr.
// --html FILE also writes the self-contained HTML page (analysis/html_report.h); --watch
// [SECONDS] repeats the report (and the page) until SIGINT/SIGTERM, or with --until-done until
// no trial is running (analysis/live_report.h).
#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <csignal>
#include <ctime>
#include <iostream>
#include <set>
#include <thread>

#include "cli/commands.h"
#include "core/error.h"
#include "core/logging.h"
#include "html_report.h"
#include "io/config_keys.h"
#include "live_report.h"
#include "report.h"

namespace md::cli {

namespace po = boost::program_options;

namespace {

std::vector<std::string> split_keys(const std::string& list) {
  std::vector<std::string> keys;
  std::string key;
  for (char c : list + ",") {
    if (c != ',') {
      if (c != ' ') key += c;
      continue;
    }
    if (!key.empty()) keys.push_back(key);
    key.clear();
  }
  return keys;
}

volatile std::sig_atomic_t stop_requested = 0;

extern "C" void request_stop(int) {
  stop_requested = 1;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &parts);
  return text;
}

void write_html(const std::string& path, const analysis::SweepSummary& summary) {
  if (path.empty()) return;
  analysis::write_file_atomically(path, analysis::html_report(summary, "generated " + utc_now()));
}

// The --watch loop: one refresh every `seconds`, and one more after SIGINT or SIGTERM.
int watch(const std::string& dir, const analysis::ReportOptions& options, const std::string& html,
          double seconds, bool until_done, int expected) {
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  const bool terminal = ::isatty(STDOUT_FILENO) != 0;
  analysis::LiveReader reader;
  std::set<std::string> warned;
  for (long refresh = 1;; ++refresh) {
    const bool last = stop_requested != 0;
    std::vector<std::string> warnings;
    const analysis::SweepSummary summary = reader.read(dir, options, &warnings);
    const int running = analysis::running_trials(summary);
    const bool done = until_done && analysis::sweep_finished(summary, expected);
    if (terminal) std::cout << "\x1b[H\x1b[2J";
    std::cout << "<!-- metadistill report --watch: refresh " << refresh << " at " << utc_now()
              << ", " << summary.trial_count << " trials, " << running << " running"
              << (last || done ? ", final" : "") << " -->\n"
              << analysis::format_report(summary, options.format) << std::flush;
    // A warning is printed once, not at every refresh.
    for (const std::string& warning : warnings) {
      if (warned.insert(warning).second) log_warning(warning);
    }
    write_html(html, summary);
    if (last || done) return 0;
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(static_cast<long>(seconds * 1000.0));
    while (stop_requested == 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

}  // namespace

int report_command(const Arguments& arguments) {
  std::string dir, group_by, format = "md", html;
  double watch_seconds = 0.0;
  int expected = 0;
  analysis::ReportOptions options;
  const std::string_view seed = io::replicate_key().path, method = io::key_path::method_name;
  const std::string group_by_help = detail::concat(
      "config keys to group by, comma-separated (default: the keys that vary, except ", seed, ")");
  const std::string where_help = detail::concat(
      "KEY=VALUE: report only the trials whose config has KEY equal to VALUE (repeatable; all "
      "must hold), e.g. ",
      method, "=metadistiller");
  const std::string compare_help = detail::concat(
      "KEY=REFERENCE: compare every other value of KEY with REFERENCE, paired on the other "
      "varying keys (e.g. ",
      method, "=baseline); see docs/report.md");
  po::options_description options_description("metadistill report DIR");
  options_description.add_options()("help,h", "show this help")("group-by", po::value(&group_by),
                                                                group_by_help.c_str())(
      "metric", po::value(&options.metric),
      "leading accuracy: acc_final (default), acc_ensemble or acc_head<s>")(
      "format", po::value(&format), "md (default), csv or json")(
      "where", po::value(&options.where)->composing(), where_help.c_str())(
      "compare", po::value(&options.compare), compare_help.c_str())(
      "html", po::value(&html),
      "also write a self-contained HTML page (tables and SVG figures) to FILE")(
      "watch", po::value(&watch_seconds)->implicit_value(10.0, "10"),
      "refresh the report (and the --html page) every SECONDS (default 10) until Ctrl-C")(
      "until-done", "with --watch: stop after the refresh at which no trial is running")(
      "expect", po::value(&expected),
      "with --until-done: also wait until N trial logs exist (a sweep starts trials one by "
      "one)");
  po::options_description hidden;
  hidden.add_options()("dir", po::value(&dir)->required(), "directory of trial logs");
  po::options_description all;
  all.add(options_description).add(hidden);
  po::positional_options_description positional;
  positional.add("dir", 1);
  po::variables_map values;
  po::store(po::command_line_parser(arguments).options(all).positional(positional).run(), values);
  if (values.count("help")) {
    std::cout << "usage: metadistill report DIR [--group-by k1,k2] [--metric NAME] "
                 "[--format md|csv|json] [--where KEY=VALUE ...]\n"
                 "       [--compare KEY=REFERENCE] [--html FILE.html]\n"
                 "       [--watch[=SECONDS] [--until-done [--expect N]]]\n\n"
              << options_description << "\n";
    return 0;
  }
  po::notify(values);
  options.group_by = split_keys(group_by);
  options.format = analysis::parse_report_format(format);
  if (values.count("watch")) {
    if (!(watch_seconds > 0.0)) throw InputError("--watch: SECONDS must be positive");
    return watch(dir, options, html, watch_seconds, values.count("until-done") != 0, expected);
  }
  if (values.count("until-done") || values.count("expect")) {
    throw InputError("--until-done and --expect need --watch");
  }
  std::vector<std::string> warnings;
  const analysis::SweepSummary summary = analysis::summarize_sweep(dir, options, &warnings);
  for (const std::string& warning : warnings) log_warning(warning);
  std::cout << analysis::format_report(summary, options.format) << std::flush;
  write_html(html, summary);
  return 0;
}

}  // namespace md::cli
