# Included from the top-level CMakeLists.txt (inside if(GANGLION_TESTS)). The fuzz targets
# need clang's libFuzzer, so scripts/fuzz.sh builds them in its own tree, build-fuzz/, with
# clang++-14; ctest only runs that script briefly. Skipped where clang++-14 is missing.
find_program(GANGLION_FUZZ_CLANGXX NAMES clang++-14)
if(GANGLION_FUZZ_CLANGXX)
  add_test(NAME fuzz_smoke COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/fuzz.sh 12)
  set_tests_properties(fuzz_smoke PROPERTIES TIMEOUT 600 LABELS fuzz)
else()
  message(STATUS "clang++-14 not found: the fuzz_smoke test is skipped")
endif()
