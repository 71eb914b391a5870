#include "sweep/group_transport.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace md::sweep {
namespace {

// "0 and 1", "0, 2 and 3".
std::string rank_list(const std::vector<int>& ranks) {
  std::string text;
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    if (i > 0) text += i + 1 == ranks.size() ? " and " : ", ";
    text += std::to_string(ranks[i]);
  }
  return text;
}

}  // namespace

TransportDecision choose_group_transport(const std::vector<std::string>& identities) {
  std::map<std::string, std::vector<int>> ranks_of;  // ordered: a stable warning
  for (std::size_t rank = 0; rank < identities.size(); ++rank) {
    MD_CHECK(!identities[rank].empty(), "choose_group_transport: rank ", rank,
             " has no device identity");
    ranks_of[identities[rank]].push_back(static_cast<int>(rank));
  }
  TransportDecision decision;
  std::string shared;
  for (const auto& [identity, ranks] : ranks_of) {
    if (ranks.size() < 2) continue;
    decision.shared_ranks.push_back(ranks);
    if (!shared.empty()) shared += "; ";
    shared += "ranks " + rank_list(ranks) + " share GPU " + identity;
  }
  if (decision.shared_ranks.empty()) return decision;
  // One GPU per rank everywhere else is still no NCCL group: the whole group goes through MPI.
  std::sort(decision.shared_ranks.begin(), decision.shared_ranks.end());
  decision.transport = GroupTransport::HostMpi;
  decision.warning = "this trial's rank group: " + shared +
                     "; NCCL needs one GPU per rank, so the group averages gradients with MPI "
                     "through host memory (slower). Run at most one rank per GPU (ranks per node "
                     "<= GPUs per node) to use NCCL";
  return decision;
}

}  // namespace md::sweep
