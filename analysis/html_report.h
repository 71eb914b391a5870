// The offline HTML report (`metadistill report DIR --html FILE.html`): one self-contained page,
// no script, no network, no external style sheet or font, the figures as inline SVG drawn here.
// It holds the summary table, the comparisons (a forest plot of the differences with their
// intervals) when the summary has one, the learning curves of each group (mean test accuracy of
// the final head per epoch, ±1 sd band), the accuracy of every head, accuracy against GPU-hours
// (wall hours on CPU runs, where GPU-hours are 0), and the trials running, failed or diverged
// with their error. Every text taken from the logs is HTML-escaped.
#pragma once

#include <string>

#include "report.h"

namespace md::analysis {

// `text` with & < > " ' replaced by character references.
std::string html_escape(const std::string& text);

// The page. `generated` is a line such as the time of day (shown under the title; may be "").
std::string html_report(const SweepSummary& summary, const std::string& generated);

// Writes `text` to `path` through a temporary file beside it and a rename, so that a reader
// never sees a half-written file; md::Error on failure.
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace md::analysis
