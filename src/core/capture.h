// Device work recorded once and replayed (runtime.cuda_graph, Backend::capture_graph): a replay
// runs the recorded device work again on the same memory, but none of the host code that
// queued it. So the recorded region may not wait for the device, read device values on the
// host, or move data between the host and the device: a replay would skip that host side and
// leave stale values behind. Each place in the engine that does one of these checks
// check_not_capturing(), so a step that would break capture fails at once with the place
// named, on the CPU (where the CPU backend's graphs replay by running the work again) as on a
// GPU (where CUDA itself would only report an invalidated capture).
#pragma once

namespace md {

// Marks the calling thread as recording device work for its lifetime (nestable).
class CaptureRegion {
 public:
  CaptureRegion();
  ~CaptureRegion();
  CaptureRegion(const CaptureRegion&) = delete;
  CaptureRegion& operator=(const CaptureRegion&) = delete;
};

// Whether the calling thread is inside a CaptureRegion.
bool capturing();
// Throws md::Error when capturing(): "<what> inside a captured step ...".
void check_not_capturing(const char* what);

}  // namespace md
