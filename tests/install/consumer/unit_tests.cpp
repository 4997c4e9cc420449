// GoogleTest tests linked with heapscope::gtest_main: one leaks 48 bytes from
// remember_forever(), one writes a byte past a block (a heap error at its free), one is clean.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

namespace {

__attribute__((noinline)) void remember_forever() {
  char* lost = static_cast<char*>(std::malloc(48));
  std::memset(lost, 1, 48);
}

TEST(Consumer, LeaksABlock) {
  remember_forever();
  SUCCEED();
}

TEST(Consumer, WritesPastABlock) {
  char* block = static_cast<char*>(std::malloc(8));
  std::memset(block, 3, 9);  // one byte too many: inside malloc's slack natively, a canary here
  std::free(block);
  SUCCEED();
}

TEST(Consumer, FreesWhatItTakes) {
  char* block = static_cast<char*>(std::malloc(64));
  std::memset(block, 2, 64);
  std::free(block);
  SUCCEED();
}

}  // namespace
