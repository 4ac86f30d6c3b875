# Integration tests: the real binary against real servers on loopback, Python 3 standard
# library only. Each suite picks its own ports.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
foreach(suite cli proxy routes errors hostile admin filters guardrails upstreams upgrade tls binary_upgrade llm llm_state security abuse first_run static_files edge mqtt modbus durable edge_e2e edge_stages edge_influx edge_mqtt_sink edge_tsdb edge_join edge_coap)
  add_test(NAME integration_${suite}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/integration/test_${suite}.py)
  set_tests_properties(integration_${suite} PROPERTIES
           ENVIRONMENT GANGLION_BIN=$<TARGET_FILE:ganglion>
           TIMEOUT 120
           LABELS integration)
endforeach()
# The fake LLM provider the llm suite runs against checks its own wire formats.
add_test(NAME integration_fake_provider_selftest
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/integration/fake_provider_selftest.py)
set_tests_properties(integration_fake_provider_selftest PROPERTIES TIMEOUT 120 LABELS integration)
# End-to-end: the official openai and @anthropic-ai/sdk Node clients (pinned in tests/e2e/package.json,
# installed by the runner with `npm ci` when missing) against the real binary and the fake provider.
add_test(NAME e2e_sdk COMMAND bash ${CMAKE_SOURCE_DIR}/tests/e2e/run.sh)
set_tests_properties(e2e_sdk PROPERTIES
         ENVIRONMENT "GANGLION_BIN=$<TARGET_FILE:ganglion>;PYTHON=${Python3_EXECUTABLE}"
         TIMEOUT 300
         LABELS e2e)
