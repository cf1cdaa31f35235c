add_library(ty_api_auth STATIC
  ${CMAKE_CURRENT_LIST_DIR}/credentials.cc
  ${CMAKE_CURRENT_LIST_DIR}/sigv4_verifier.cc
)
target_include_directories(ty_api_auth PUBLIC ${CMAKE_CURRENT_LIST_DIR}/..)
target_link_libraries(ty_api_auth PUBLIC ty_common)
