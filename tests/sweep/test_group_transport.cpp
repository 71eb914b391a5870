// The transport decision of a data-parallel CUDA trial's rank group (sweep/group_transport.h)
// with stand-in device identities: distinct GPUs use NCCL; any GPU shared by two ranks sends
// the whole group through host MPI, with one warning that names the ranks and the GPU.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "sweep/group_transport.h"

namespace md::sweep {
namespace {

TEST(GroupTransport, DistinctGpusUseNccl) {
  const TransportDecision decision = choose_group_transport({"GPU-aaaa", "GPU-bbbb", "GPU-cccc"});
  EXPECT_EQ(decision.transport, GroupTransport::Nccl);
  EXPECT_TRUE(decision.shared_ranks.empty());
  EXPECT_TRUE(decision.warning.empty());
}

TEST(GroupTransport, OneRankIsNccl) {
  EXPECT_EQ(choose_group_transport({"GPU-aaaa"}).transport, GroupTransport::Nccl);
}

TEST(GroupTransport, TwoRanksOnOneGpuGoThroughTheHostWithAWarningNamingThem) {
  const TransportDecision decision = choose_group_transport({"GPU-aaaa", "GPU-aaaa"});
  EXPECT_EQ(decision.transport, GroupTransport::HostMpi);
  EXPECT_EQ(decision.shared_ranks, (std::vector<std::vector<int>>{{0, 1}}));
  EXPECT_NE(decision.warning.find("ranks 0 and 1 share GPU GPU-aaaa"), std::string::npos)
      << decision.warning;
  EXPECT_NE(decision.warning.find("NCCL"), std::string::npos) << decision.warning;
}

TEST(GroupTransport, EverySharedGpuIsNamedAndTheWholeGroupGoesThroughTheHost) {
  const TransportDecision decision =
      choose_group_transport({"GPU-b", "GPU-a", "GPU-b", "GPU-c", "GPU-a", "GPU-b"});
  EXPECT_EQ(decision.transport, GroupTransport::HostMpi);
  EXPECT_EQ(decision.shared_ranks, (std::vector<std::vector<int>>{{0, 2, 5}, {1, 4}}));
  EXPECT_NE(decision.warning.find("ranks 1 and 4 share GPU GPU-a"), std::string::npos)
      << decision.warning;
  EXPECT_NE(decision.warning.find("ranks 0, 2 and 5 share GPU GPU-b"), std::string::npos)
      << decision.warning;
  EXPECT_EQ(decision.warning.find("GPU-c"), std::string::npos) << decision.warning;
}

TEST(GroupTransport, AMissingIdentityIsAnError) {
  EXPECT_THROW(choose_group_transport({"GPU-a", ""}), Error);
}

}  // namespace
}  // namespace md::sweep
