// metadistill config: prints the key tables of io/config_keys.h: --schema (JSON, one object per
// trial-config and sweep-file key), --defaults (the default trial config as YAML, which
// `train --config` reads back) or --markdown (the generated tables of docs/config.md). Reads
// nothing and writes only to standard output.
#include <boost/program_options.hpp>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "io/config_keys.h"

namespace md::cli {

namespace po = boost::program_options;

int config_command(const Arguments& arguments) {
  po::options_description options("metadistill config");
  options.add_options()("help,h", "show this help")(
      "schema", "print every trial-config and sweep-file key as JSON")(
      "defaults", "print the default trial config (YAML; an idx Fashion-MNIST dataset)")(
      "markdown", "print the key tables of docs/config.md (Markdown)");
  po::variables_map values;
  po::store(po::command_line_parser(arguments).options(options).run(), values);
  if (values.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  po::notify(values);
  const int modes = static_cast<int>(values.count("schema") + values.count("defaults") +
                                     values.count("markdown"));
  if (modes != 1) {
    throw InputError("expected exactly one of --schema, --defaults, --markdown");
  }
  if (values.count("schema")) std::cout << io::config_schema_json();
  if (values.count("defaults")) std::cout << io::default_trial_yaml();
  if (values.count("markdown")) std::cout << io::config_markdown();
  return 0;
}

}  // namespace md::cli
