# FindCUDNN: cuDNN 8 or 9. cuDNN 9 is split into several libraries (graph, ops, cnn, adv,
# engines...); libcudnn is the shim that loads them, so linking it is enough to build, while
# the sub-libraries must sit beside it at run time.
# Looked for in: CUDNN_ROOT (cmake or environment), the CUDA toolkit, the system, then the
# nvidia/cudnn folder of the site-packages of a Python (Python3_EXECUTABLE, else python3 on
# PATH) where PyTorch's wheel nvidia-cudnn puts include/cudnn*.h and lib/libcudnn.so.9. The
# library may be the unversioned libcudnn.so or, as in that wheel, only libcudnn.so.9 / .so.8.
#   CUDNN_FOUND, CUDNN_VERSION, CUDNN_LIBRARY, CUDNN_INCLUDE_DIR, CUDNN::cudnn (imported target)
set(_cudnn_hints ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_DIR}
  ${CUDAToolkit_LIBRARY_ROOT})
set(_cudnn_wheel_dirs)
if(Python3_EXECUTABLE)
  set(_cudnn_python "${Python3_EXECUTABLE}")
else()
  find_program(_cudnn_python NAMES python3 NO_CACHE)
endif()
if(_cudnn_python)
  execute_process(
    COMMAND "${_cudnn_python}" -c
      "import os, site, sys\nroots = list(getattr(site, 'getsitepackages', lambda: [])()) + [site.getusersitepackages()] + sys.path\nprint(';'.join(os.path.join(r, 'nvidia', 'cudnn') for r in roots if r and os.path.isdir(os.path.join(r, 'nvidia', 'cudnn'))))"
    OUTPUT_VARIABLE _cudnn_wheel_dirs OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET TIMEOUT 30)
endif()

find_path(CUDNN_INCLUDE_DIR cudnn.h
  HINTS ${_cudnn_hints}
  PATHS ${_cudnn_wheel_dirs}
  PATH_SUFFIXES include)
find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 libcudnn.so.8 NAMES_PER_DIR
  HINTS ${_cudnn_hints}
  PATHS ${_cudnn_wheel_dirs}
  PATH_SUFFIXES lib64 lib lib/x64)
if(CUDNN_INCLUDE_DIR)
  set(_cudnn_version_header "${CUDNN_INCLUDE_DIR}/cudnn_version.h")
  if(NOT EXISTS "${_cudnn_version_header}")
    set(_cudnn_version_header "${CUDNN_INCLUDE_DIR}/cudnn.h")
  endif()
  file(STRINGS "${_cudnn_version_header}" _cudnn_major REGEX "^#define CUDNN_MAJOR +[0-9]+")
  file(STRINGS "${_cudnn_version_header}" _cudnn_minor REGEX "^#define CUDNN_MINOR +[0-9]+")
  file(STRINGS "${_cudnn_version_header}" _cudnn_patch REGEX "^#define CUDNN_PATCHLEVEL +[0-9]+")
  string(REGEX MATCH "[0-9]+" _cudnn_major "${_cudnn_major}")
  string(REGEX MATCH "[0-9]+" _cudnn_minor "${_cudnn_minor}")
  string(REGEX MATCH "[0-9]+" _cudnn_patch "${_cudnn_patch}")
  set(CUDNN_VERSION "${_cudnn_major}.${_cudnn_minor}.${_cudnn_patch}")
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUDNN
  REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR
  VERSION_VAR CUDNN_VERSION)
if(CUDNN_FOUND AND NOT TARGET CUDNN::cudnn)
  add_library(CUDNN::cudnn UNKNOWN IMPORTED)
  set_target_properties(CUDNN::cudnn PROPERTIES
    IMPORTED_LOCATION "${CUDNN_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
endif()
mark_as_advanced(CUDNN_INCLUDE_DIR CUDNN_LIBRARY)
