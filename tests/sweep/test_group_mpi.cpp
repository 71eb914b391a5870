// The readiness exchange of a trial's rank group (sweep/group_collective.h) under mpirun -np 2,
// with stand-in device identities (no GPU needed): the identities reach every rank and decide
// the transport; a rank that failed before the collective makes every rank throw an error
// naming it, and the group stays usable (no rank is left waiting); a CUDA group on a machine
// without a usable GPU fails the same way; the host-staged collective averages and broadcasts.
// Run by run_group_mpi.sh; its own main initializes MPI.
#include <gtest/gtest.h>
#include <mpi.h>

#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "core/tensor.h"
#include "sweep/group_collective.h"

namespace md::sweep {
namespace {

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int world_size() {
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// The error every rank throws, or "" when none.
template <typename Work>
std::string error_of(const Work& work) {
  try {
    work();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

// After a failed agreement the group still works: a barrier and a reduction complete.
void expect_group_usable() {
  EXPECT_EQ(MPI_Barrier(MPI_COMM_WORLD), MPI_SUCCESS);
  int one = 1, total = 0;
  ASSERT_EQ(MPI_Allreduce(&one, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD), MPI_SUCCESS);
  EXPECT_EQ(total, world_size());
}

TEST(GroupMpi, IdentitiesReachEveryRank) {
  const std::vector<std::string> identities = exchange_readiness(
      MPI_COMM_WORLD,
      RankReadiness{.device_identity = "GPU-stand-in-" + std::to_string(world_rank()),
                    .error = {}});
  ASSERT_EQ(static_cast<int>(identities.size()), world_size());
  for (int rank = 0; rank < world_size(); ++rank) {
    EXPECT_EQ(identities[static_cast<std::size_t>(rank)], "GPU-stand-in-" + std::to_string(rank));
  }
}

TEST(GroupMpi, DistinctGpusChooseNccl) {
  const TransportDecision decision = decide_group_transport(
      MPI_COMM_WORLD,
      RankReadiness{.device_identity = "GPU-stand-in-" + std::to_string(world_rank()),
                    .error = {}});
  EXPECT_EQ(decision.transport, GroupTransport::Nccl);
  EXPECT_TRUE(decision.warning.empty());
}

TEST(GroupMpi, ASharedGpuChoosesTheHostPathOnEveryRank) {
  const TransportDecision decision = decide_group_transport(
      MPI_COMM_WORLD, RankReadiness{.device_identity = "GPU-one-for-all", .error = {}});
  EXPECT_EQ(decision.transport, GroupTransport::HostMpi);
  EXPECT_NE(decision.warning.find("ranks 0 and 1 share GPU GPU-one-for-all"), std::string::npos)
      << decision.warning;
}

TEST(GroupMpi, OneRanksFailureThrowsOnEveryRankNamingIt) {
  const std::string local_error = world_rank() == 1 ? "trial.yaml: cuda:7 is not available" : "";
  const std::string message = error_of([&] {
    exchange_readiness(MPI_COMM_WORLD,
                       RankReadiness{.device_identity = "GPU-x", .error = local_error});
  });
  EXPECT_NE(message.find("rank 1: trial.yaml: cuda:7 is not available"), std::string::npos)
      << "rank " << world_rank() << ": " << message;
  EXPECT_EQ(message.find("rank 0:"), std::string::npos) << message;
  expect_group_usable();
}

TEST(GroupMpi, MakeGroupCollectiveWithAFailedRankThrowsOnEveryRank) {
  const std::string local_error = world_rank() == 0 ? "trial.yaml: no CUDA device" : "";
  const std::string message =
      error_of([&] { make_group_collective(MPI_COMM_WORLD, Device::cpu(), local_error); });
  EXPECT_NE(message.find("rank 0: trial.yaml: no CUDA device"), std::string::npos)
      << "rank " << world_rank() << ": " << message;
  expect_group_usable();
}

// Without a usable GPU (or CUDA in the build) every rank fails to name its device: all throw.
TEST(GroupMpi, CudaGroupWithoutAGpuFailsOnEveryRank) {
  if (backend::cuda_device_count() > 0) GTEST_SKIP() << "a GPU is visible";
  const std::string message =
      error_of([&] { make_group_collective(MPI_COMM_WORLD, Device::cuda(0)); });
  EXPECT_NE(message.find("rank 0: "), std::string::npos) << message;
  EXPECT_NE(message.find("rank 1: "), std::string::npos) << message;
  expect_group_usable();
}

TEST(GroupMpi, HostStagedCollectiveAveragesAndBroadcasts) {
  backend::init();
  HostStagedCollective collective(MPI_COMM_WORLD, Device::cpu());
  const auto rank = static_cast<float>(world_rank());
  Tensor values = Tensor::from_vector<float>({3}, {rank, 2.0f * rank, 4.0f});
  collective.average(values);
  const float mean = static_cast<float>(world_size() - 1) / 2.0f;
  EXPECT_EQ(values.to_vector<float>(), (std::vector<float>{mean, 2.0f * mean, 4.0f}));
  Tensor mine = Tensor::from_vector<float>({2}, {rank, rank + 1.0f});
  collective.broadcast(mine);
  EXPECT_EQ(mine.to_vector<float>(), (std::vector<float>{0.0f, 1.0f}));
}

}  // namespace
}  // namespace md::sweep

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  testing::InitGoogleTest(&argc, argv);
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int failed = 0;
  if (size != 2) {
    if (md::sweep::world_rank() == 0) std::fprintf(stderr, "run with mpirun -np 2\n");
    failed = 1;
  } else {
    failed = RUN_ALL_TESTS() == 0 ? 0 : 1;
  }
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any_failed;
}
