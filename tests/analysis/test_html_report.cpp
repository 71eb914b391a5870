// Tests of the HTML report (analysis/html_report.h) on trial logs written by the real writer:
// the page is self-contained (no script, no link to anything outside, no src=), holds its four
// figures as inline SVG, escapes text from the logs, and is written atomically. When Debian's
// `chromium` is on PATH the page is also rendered headless: no console message, and a
// screenshot with many distinct colours (figures drawn, not a blank page); otherwise that test
// is skipped. MD_REPORT_SCREENSHOT=FILE keeps the screenshot (docs/report_example.png).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "../io/io_test_util.h"
#include "html_report.h"
#include "io/config.h"
#include "io/trial_log.h"
#include "report.h"

namespace md::analysis {
namespace {

using test::TempDir;

struct Trial {
  std::string method;
  int seed = 0;
  std::string status = "complete";
  double level = 0.7;  // final accuracy
  int epochs = 12;
  std::string error;
};

void write_trial(const TempDir& dir, const Trial& spec) {
  const io::TrialConfig config = io::parse_trial_config(
      "dataset: {name: idx, root: /data}\nmodel: {arch: resnet20}\nmethod: {name: " + spec.method +
          "}\noptim: {epochs: " + std::to_string(spec.epochs) +
          "}\nruntime: {seed: " + std::to_string(spec.seed) + "}\n",
      "<test>");
  const std::string id = io::trial_id(config);
  const int heads = spec.method == "baseline" ? 1 : 4;
  io::TrialLog log = io::TrialLog::open(dir.file(id + ".h5"), io::OpenMode::Create,
                                        {{"trial_id", id},
                                         {"status", std::string("running")},
                                         {"error", std::string()},
                                         {"config", io::to_yaml(config)}});
  const int rows = spec.status == "complete" ? spec.epochs : spec.epochs / 2;
  double last = 0.0;
  for (int e = 0; e < rows; ++e) {
    const double progress = 1.0 - std::exp(-0.35 * (e + 1));
    last = 0.1 + (spec.level - 0.1) * progress + 0.004 * std::sin(3.0 * e + spec.seed);
    io::Row row{{"epoch", e + 1.0},
                {"test_acc_final", last},
                {"test_acc_ensemble", last + 0.01},
                {"wall_s", 30.0 + 5.0 * spec.seed}};
    for (int head = 0; head < heads; ++head) {
      row["test_acc_head" + std::to_string(head)] = last - 0.03 * (heads - 1 - head);
    }
    log.append("epoch", row);
    log.flush();
  }
  if (spec.status == "complete") {
    std::map<std::string, double> final_values{{"last_acc_final", last},
                                               {"best_acc_final", last + 0.002},
                                               {"last_acc_ensemble", last + 0.01},
                                               {"best_acc_ensemble", last + 0.012},
                                               {"total_wall_s", 30.0 * rows + 200.0 * spec.seed},
                                               {"gpu_hours", 0.0},
                                               {"epochs", static_cast<double>(rows)}};
    for (int head = 0; head < heads; ++head) {
      final_values["last_acc_head" + std::to_string(head)] = last - 0.03 * (heads - 1 - head);
      final_values["best_acc_head" + std::to_string(head)] = last - 0.03 * (heads - 1 - head);
    }
    log.set_final(final_values);
  }
  if (spec.status != "running") log.set_attribute("status", spec.status);
  if (!spec.error.empty()) log.set_attribute("error", spec.error);
  log.close();
}

const char* const kHostileError = "loss is nan at step 7 <script>alert(\"x\")</script> & 'q'";

// Three methods x four seeds, plus a failed and a running trial.
void write_sweep(const TempDir& dir) {
  const std::map<std::string, double> level{
      {"baseline", 0.86}, {"byot", 0.875}, {"metadistiller", 0.882}};
  for (const auto& [method, accuracy] : level) {
    for (int seed = 0; seed < 4; ++seed) {
      write_trial(dir, {method, seed, "complete",
                        accuracy + 0.004 * seed - 0.006 * (seed % 2) +
                            0.003 * std::sin(1.7 * seed + 100.0 * accuracy),
                        12, ""});
    }
  }
  write_trial(dir, {"byot", 7, "diverged", 0.5, 12, kHostileError});
  write_trial(dir, {"metadistiller", 8, "running", 0.88, 12, ""});
}

std::string read_text(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

int count(const std::string& text, const std::string& needle) {
  int found = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++found;
  }
  return found;
}

std::string render(const TempDir& dir, const std::string& page) {
  ReportOptions options;
  options.compare = "method.name=baseline";
  options.compare_settings.resamples = 2000;
  const SweepSummary summary = summarize_sweep(dir.file(""), options, nullptr);
  write_file_atomically(page, html_report(summary, "generated <now>"));
  return read_text(page);
}

TEST(HtmlReport, EscapesText) {
  EXPECT_EQ(html_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
  EXPECT_EQ(html_escape("plain"), "plain");
}

TEST(HtmlReport, SelfContainedPageWithFigures) {
  TempDir logs;
  write_sweep(logs);
  TempDir out;
  const std::string page = out.file("report.html");
  const std::string html = render(logs, page);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  EXPECT_EQ(count(html, "<svg"), 4);  // forest plot, curves, heads, cost
  EXPECT_EQ(count(html, "<svg"), count(html, "</svg>"));
  for (const char* outside :
       {"http://", "https://", "src=", "<script", "<link", "@import", "url("}) {
    EXPECT_EQ(html.find(outside), std::string::npos) << outside;
  }
  // Text from the logs is escaped.
  EXPECT_NE(html.find("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;"),
            std::string::npos);
  EXPECT_NE(html.find("generated &lt;now&gt;"), std::string::npos);
  // Sections: summary, comparisons, figures, the trials needing attention.
  for (const char* text : {"<h2>Summary</h2>", "Comparisons with method.name = baseline",
                           "metadistiller \xe2\x88\x92 baseline (last epoch)", "Learning curves",
                           "wall-clock minutes per trial", "diverged", "running"}) {
    EXPECT_NE(html.find(text), std::string::npos) << text;
  }
  // Written through a temporary file: nothing else is left beside the page.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(out.file(""))) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(HtmlReport, RendersInHeadlessChromium) {
  if (std::system("command -v chromium > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "chromium is not installed (Debian package chromium)";
  }
  TempDir logs;
  write_sweep(logs);
  TempDir out;
  const std::string page = out.file("report.html");
  render(logs, page);
  const std::string shot = out.file("shot.png");
  const std::string profile = out.file("profile");
  const std::string common =
      "chromium --headless --disable-gpu --no-sandbox --hide-scrollbars "
      "--no-first-run --user-data-dir=" +
      profile + " --enable-logging=stderr --v=0 ";
  const std::string console = out.file("console.txt");
  const std::string dom = out.file("dom.html");
  ASSERT_EQ(std::system((common + "--screenshot=" + shot + " --window-size=1200,2400 file://" +
                         page + " > /dev/null 2> " + console)
                            .c_str()),
            0)
      << read_text(console);
  ASSERT_EQ(
      std::system((common + "--dump-dom file://" + page + " > " + dom + " 2>> " + console).c_str()),
      0);
  const std::string log = read_text(console);
  EXPECT_EQ(log.find("CONSOLE"), std::string::npos) << log;
  EXPECT_EQ(count(read_text(dom), "<svg"), 4);
  // The screenshot holds the figures: many distinct colours (the page's text alone is a few
  // greys). Decoded with Python's zlib when python3 is there.
  ASSERT_TRUE(std::filesystem::exists(shot));
  EXPECT_GT(std::filesystem::file_size(shot), 20000u);
  if (std::system("command -v python3 > /dev/null 2>&1") == 0) {
    const std::string colours = out.file("colours.txt");
    const std::string script = std::string(MD_SOURCE_DIR) + "/tests/analysis/png_colours.py";
    ASSERT_EQ(std::system(("python3 " + script + " " + shot + " > " + colours).c_str()), 0);
    const int distinct = std::stoi(read_text(colours));
    EXPECT_GT(distinct, 200) << "the screenshot looks blank";
  }
  if (const char* keep = std::getenv("MD_REPORT_SCREENSHOT")) {
    std::filesystem::copy_file(shot, keep, std::filesystem::copy_options::overwrite_existing);
  }
}

}  // namespace
}  // namespace md::analysis
