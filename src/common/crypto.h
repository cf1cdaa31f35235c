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
// True when a and b are equal, in time that depends only on their lengths (secrets).
bool ConstantTimeEquals(std::string_view a, std::string_view b);
// Standard base64 (RFC 4648, with padding).
std::string Base64Encode(std::string_view bytes);
// Decodes standard base64 (padding required, no whitespace); false on malformed input.
bool Base64Decode(std::string_view text, std::string* out);

}  // namespace ty
