ty_add_test_binary(ty_api_auth_tests
  ${CMAKE_CURRENT_LIST_DIR}/sigv4_verifier_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/credentials_test.cc
)
target_link_libraries(ty_api_auth_tests PRIVATE ty_api_auth nlohmann_json::nlohmann_json)
target_compile_definitions(ty_api_auth_tests PRIVATE
  TY_TEST_FIXTURES_DIR="${CMAKE_CURRENT_LIST_DIR}/fixtures")
