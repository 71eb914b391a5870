// The builders of each model family, for make_network (model.cpp). Each returns nullptr when
// spec.arch is not one of its family's names, and throws md::InputError for a name of its
// family that is malformed (e.g. wrn_15_4). Internal to the models layer.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/model.h"

namespace md::models {

std::unique_ptr<Network> make_resnet(const ModelSpec& spec);       // resnet.cpp
std::unique_ptr<Network> make_wide_resnet(const ModelSpec& spec);  // wrn.cpp
std::unique_ptr<Network> make_vgg(const ModelSpec& spec);          // vgg.cpp
std::unique_ptr<Network> make_mobilenetv2(const ModelSpec& spec);  // mobilenetv2.cpp

std::vector<std::string> resnet_architectures();
std::vector<std::string> wide_resnet_architectures();
std::vector<std::string> vgg_architectures();
std::vector<std::string> mobilenetv2_architectures();

}  // namespace md::models
