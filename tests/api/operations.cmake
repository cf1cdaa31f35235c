# operations tests: search, request parsing, response rendering.
ty_add_test_binary(ty_api_ops_tests
  ${CMAKE_CURRENT_SOURCE_DIR}/search_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/training_job_request_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/training_job_response_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/errors_test.cc
)
target_link_libraries(ty_api_ops_tests PRIVATE ty_api)
