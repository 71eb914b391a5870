// Network::forward's scope check, and make_network: dispatches an architecture name to its
// family's builder and turns an unknown name into an input error that lists the known ones.
#include "models/model.h"

#include "core/error.h"
#include "models/families.h"

namespace md::models {

Network::~Network() = default;

NetworkOutput Network::forward(const nn::ForwardContext& context, const autograd::Variable& x,
                               const ForwardScope& scope) const {
  const int all = num_stages();
  if (scope.stages == ForwardScope::kAllStages) return forward_stages(context, x, all);
  MD_CHECK(scope.stages >= 1 && scope.stages <= all, arch_, ": a forward over ", scope.stages,
           " stages; the network has ", all);
  return forward_stages(context, x, scope.stages);
}

std::vector<std::string> known_architectures() {
  std::vector<std::string> names;
  for (const auto& family : {resnet_architectures(), wide_resnet_architectures(),
                             vgg_architectures(), mobilenetv2_architectures()}) {
    names.insert(names.end(), family.begin(), family.end());
  }
  return names;
}

std::unique_ptr<Network> make_network(const ModelSpec& spec) {
  MD_INPUT_CHECK(spec.num_classes >= 1, "ModelSpec::num_classes must be at least 1, got ",
                 spec.num_classes);
  MD_INPUT_CHECK(spec.in_channels >= 1, "ModelSpec::in_channels must be at least 1, got ",
                 spec.in_channels);
  using Builder = std::unique_ptr<Network> (*)(const ModelSpec&);
  for (Builder builder : {&make_resnet, &make_wide_resnet, &make_vgg, &make_mobilenetv2}) {
    if (std::unique_ptr<Network> network = builder(spec)) return network;
  }
  std::string known;
  for (const std::string& name : known_architectures()) {
    known += (known.empty() ? "" : ", ") + name;
  }
  throw InputError("unknown architecture '" + spec.arch + "'; known: " + known +
                   " (wrn_<depth>_<width> for any depth with (depth - 4) % 6 == 0)");
}

}  // namespace md::models
