// The subcommands of the `metadistill` executable (DESIGN.md §6), one file each. Each takes the
// arguments after its name and returns the exit status; errors are thrown as md::InputError
// (exit 2), md::Interrupted (exit 3) or md::Error (exit 1) and turned into statuses by main().
#pragma once

#include <string>
#include <vector>

namespace md::cli {

using Arguments = std::vector<std::string>;

int train_command(const Arguments& arguments);
int predict_command(const Arguments& arguments);
int bench_command(const Arguments& arguments);
int report_command(const Arguments& arguments);
int sweep_command(const Arguments& arguments);
int pack_command(const Arguments& arguments);
int config_command(const Arguments& arguments);

}  // namespace md::cli
