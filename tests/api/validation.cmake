# validation tests: service model loading and request validation.
ty_add_test_binary(ty_api_validation_tests
  ${CMAKE_CURRENT_SOURCE_DIR}/service_model_test.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/validator_test.cc
)
target_link_libraries(ty_api_validation_tests PRIVATE ty_api_validation)
