#include "core/capture.h"

#include <string>

#include "core/error.h"

namespace md {
namespace {

thread_local int capture_depth = 0;

}  // namespace

CaptureRegion::CaptureRegion() {
  ++capture_depth;
}

CaptureRegion::~CaptureRegion() {
  --capture_depth;
}

bool capturing() {
  return capture_depth > 0;
}

void check_not_capturing(const char* what) {
  if (capture_depth == 0) return;
  throw Error(std::string(what) +
              " inside a captured step: recorded device work is replayed without its host side, "
              "so it may not synchronize with the device or move data through the host");
}

}  // namespace md
