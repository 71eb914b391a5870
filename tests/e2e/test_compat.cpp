// Files written before an upgrade keep working (the compatibility rule of the guide): a
// MetaDistiller trial interrupted by SIGUSR1 under commit 198b5e5, before the generator had a
// label anchor (tests/fixtures/pre_label_anchor: its config, checkpoint and log as that commit
// wrote them, and the final /model, /aux and /gen of the same trial run through by that commit).
// The current binary, given the same command, resumes it under the same trial id, says that it
// goes on without the anchor (method.meta.label_weight 0), and ends with weights bit-identical to
// the old binary's uninterrupted run.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "e2e_support.h"
#include "io/checkpoint.h"
#include "io/trial_log.h"

namespace md::e2e {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTrialId = "b8c205d8b4f9b18e";

TEST(Compatibility, TrialInterruptedBeforeTheLabelAnchorResumesAsItStarted) {
  const fs::path fixtures = fs::path(MD_SOURCE_DIR) / "tests/fixtures/pre_label_anchor";
  TempDir dir("compat_label_anchor");
  const fs::path out = dir.path() / "out";
  fs::create_directories(out);
  for (const std::string suffix : {".ckpt.h5", ".h5"}) {
    fs::copy_file(fixtures / (kTrialId + suffix), out / (kTrialId + suffix));
  }
  const ProcessResult result =
      run_metadistill({"train", "--config", (fixtures / "trial.yaml").string(), "--out",
                       out.string(), "--progress", "off"});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_NE(result.err.find("resuming trial " + std::string(kTrialId)), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("resumes without the generator's label anchor"), std::string::npos)
      << result.err;

  const std::string log_path = (out / (std::string(kTrialId) + ".h5")).string();
  const io::TrialLogContents log = io::read_trial_log(log_path);
  EXPECT_EQ(io::attribute_string(log.attributes, "status", log_path), "complete");
  EXPECT_EQ(log.tables.at("epoch").at("epoch"), (std::vector<double>{1, 2}));

  const io::CheckpointData expected =
      io::read_checkpoint((fixtures / "expected_final.ckpt.h5").string());
  const io::CheckpointData actual =
      io::read_checkpoint((out / (std::string(kTrialId) + ".ckpt.h5")).string());
  for (const std::string group : {"model", "aux", "gen"}) {
    const auto want = expected.groups.find(group);
    const auto have = actual.groups.find(group);
    ASSERT_NE(want, expected.groups.end()) << group;
    ASSERT_NE(have, actual.groups.end()) << group;
    ASSERT_EQ(want->second.size(), have->second.size()) << group;
    for (std::size_t i = 0; i < want->second.size(); ++i) {
      const auto& [name, tensor] = want->second[i];
      const auto& [other_name, other] = have->second[i];
      ASSERT_EQ(name, other_name) << group;
      ASSERT_EQ(tensor.shape(), other.shape()) << group << "/" << name;
      EXPECT_EQ(std::memcmp(tensor.raw_data(), other.raw_data(), tensor.nbytes()), 0)
          << "/" << group << "/" << name << " differs from the old binary's uninterrupted run";
    }
  }
}

}  // namespace
}  // namespace md::e2e
