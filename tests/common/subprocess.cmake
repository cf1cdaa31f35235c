# subprocess tests (real child processes)
ty_add_test_binary(ty_common_subprocess_tests ${CMAKE_CURRENT_LIST_DIR}/subprocess_test.cc)
target_link_libraries(ty_common_subprocess_tests PRIVATE ty_common)
