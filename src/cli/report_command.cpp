// metadistill report: aggregates a sweep's trial logs (DIR, searched recursively) into one table,
// mean ± std over the trials of each group, in Markdown, CSV or JSON (analysis/report.h), and
// with --compare KEY=REFERENCE paired comparisons against a reference (analysis/compare.h). The
// report goes to standard output; skipped files and an empty directory are warnings on stderr.
#include <boost/program_options.hpp>
#include <iostream>

#include "cli/commands.h"
#include "core/logging.h"
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

}  // namespace

int report_command(const Arguments& arguments) {
  std::string dir, group_by, format = "md";
  analysis::ReportOptions options;
  po::options_description options_description("metadistill report DIR");
  options_description.add_options()("help,h", "show this help")(
      "group-by", po::value(&group_by),
      "config keys to group by, comma-separated (default: the keys that vary, except "
      "runtime.seed)")("metric", po::value(&options.metric),
                       "leading accuracy: acc_final (default), acc_ensemble or acc_head<s>")(
      "format", po::value(&format), "md (default), csv or json")(
      "compare", po::value(&options.compare),
      "KEY=REFERENCE: compare every other value of KEY with REFERENCE, paired on the other "
      "varying keys (e.g. method.name=baseline); see docs/report.md");
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
                 "[--format md|csv|json] [--compare KEY=REFERENCE]\n\n"
              << options_description << "\n";
    return 0;
  }
  po::notify(values);
  options.group_by = split_keys(group_by);
  options.format = analysis::parse_report_format(format);
  std::vector<std::string> warnings;
  const std::string report = analysis::make_report(dir, options, &warnings);
  for (const std::string& warning : warnings) log_warning(warning);
  std::cout << report << std::flush;
  return 0;
}

}  // namespace md::cli
