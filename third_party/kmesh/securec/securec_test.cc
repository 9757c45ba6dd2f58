#include "third_party/kmesh/securec/securec.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

TEST_CASE("memcpy_s copies within the destination and reports libboundscheck's codes") {
  char dest[8];
  std::memset(dest, 'x', sizeof dest);

  SECTION("a copy that fits") {
    CHECK(memcpy_s(dest, sizeof dest, "abcd", 4) == EOK);
    CHECK(std::string(dest, 5) == "abcdx");
  }
  SECTION("count 0 copies nothing") {
    CHECK(memcpy_s(dest, sizeof dest, "abcd", 0) == EOK);
    CHECK(dest[0] == 'x');
  }
  SECTION("count above the destination zeroes it") {
    CHECK(memcpy_s(dest, 4, "abcdef", 6) == ERANGE_AND_RESET);
    CHECK(std::string(dest, 8) == std::string("\0\0\0\0xxxx", 8));
  }
  SECTION("a NULL source zeroes the destination") {
    CHECK(memcpy_s(dest, sizeof dest, nullptr, 1) == EINVAL_AND_RESET);
    CHECK(std::string(dest, 8) == std::string(8, '\0'));
  }
  SECTION("a NULL destination or an impossible size leaves everything alone") {
    CHECK(memcpy_s(nullptr, 8, "a", 1) == EINVAL);
    CHECK(memcpy_s(dest, 0, "a", 1) == ERANGE);
    CHECK(memcpy_s(dest, SECUREC_MEM_MAX_LEN + 1, "a", 1) == ERANGE);
    CHECK(dest[0] == 'x');
  }
  SECTION("overlapping ranges zero the destination") {
    std::memcpy(dest, "abcdefgh", 8);
    CHECK(memcpy_s(dest + 1, 7, dest, 4) == EOVERLAP_AND_RESET);
    CHECK(std::string(dest, 8) == std::string("a\0\0\0\0\0\0\0", 8));
  }
  SECTION("adjacent ranges do not overlap") {
    std::memcpy(dest, "abcdefgh", 8);
    CHECK(memcpy_s(dest + 4, 4, dest, 4) == EOK);
    CHECK(std::string(dest, 8) == "abcdabcd");
  }
}

TEST_CASE("strcpy_s copies the string with its NUL or clears the destination's first byte") {
  char dest[6];
  std::memset(dest, 'x', sizeof dest);

  SECTION("a string that fits, with its terminator") {
    CHECK(strcpy_s(dest, sizeof dest, "abcde") == EOK);
    CHECK(std::string(dest) == "abcde");
  }
  SECTION("one byte too long: destination cleared") {
    CHECK(strcpy_s(dest, sizeof dest, "abcdef") == ERANGE_AND_RESET);
    CHECK(dest[0] == '\0');
    CHECK(dest[1] == 'x');
  }
  SECTION("the empty string") {
    CHECK(strcpy_s(dest, sizeof dest, "") == EOK);
    CHECK(dest[0] == '\0');
    CHECK(dest[1] == 'x');
  }
  SECTION("NULL source, NULL destination, impossible sizes") {
    CHECK(strcpy_s(dest, sizeof dest, nullptr) == EINVAL_AND_RESET);
    CHECK(dest[0] == '\0');
    dest[0] = 'x';
    CHECK(strcpy_s(nullptr, 6, "a") == EINVAL);
    CHECK(strcpy_s(dest, 0, "a") == ERANGE);
    CHECK(strcpy_s(dest, SECUREC_STRING_MAX_LEN + 1, "a") == ERANGE);
    CHECK(dest[0] == 'x');
  }
  SECTION("overlap") {
    char buf[8] = "abc";
    CHECK(strcpy_s(buf + 1, 7, buf) == EOVERLAP_AND_RESET);
    CHECK(buf[1] == '\0');
  }
}
