# Integration tests: the real binary against real servers on loopback, Python 3 standard
# library only. Each suite picks its own ports.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
foreach(suite cli proxy routes errors hostile admin filters upstreams upgrade tls binary_upgrade)
  add_test(NAME integration_${suite}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/integration/test_${suite}.py)
  set_tests_properties(integration_${suite} PROPERTIES
           ENVIRONMENT GANGLION_BIN=$<TARGET_FILE:ganglion>
           TIMEOUT 120
           LABELS integration)
endforeach()
