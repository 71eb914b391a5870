# md_add_test(NAME name SOURCES a.cpp ... LIBS lib ... LABELS unit ...)
# One GoogleTest binary per area, registered with ctest under the given labels.
include(GoogleTest)
function(md_add_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main md_warnings)
  target_compile_definitions(${ARG_NAME} PRIVATE MD_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  # OpenMP threads that spin while waiting take the core of the test ctest -j runs beside them.
  gtest_discover_tests(${ARG_NAME}
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT} SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]"
               ENVIRONMENT "OMP_WAIT_POLICY=passive"
    DISCOVERY_TIMEOUT 60)
endfunction()
