// Hashes, HMACs and randomness (OpenSSL underneath).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ty {

std::string Sha256Hex(std::string_view data);
// Raw 32-byte HMAC-SHA256 of data under key.
std::string HmacSha256(std::string_view key, std::string_view data);
std::string HexEncode(std::string_view bytes);
// Cryptographically random string over [A-Za-z0-9] (or [A-Z0-9] when upper_only).
std::string RandomAlnum(size_t n, bool upper_only = false);
// Random decimal digits.
std::string RandomDigits(size_t n);
// A random RFC 4122 version-4 UUID.
std::string RandomUuid();

}  // namespace ty
