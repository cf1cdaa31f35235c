add_library(ty_api_auth INTERFACE)
