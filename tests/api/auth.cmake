# auth tests
