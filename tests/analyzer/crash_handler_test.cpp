// heapscope's own crashes are reported with a stack, and still end the process by the signal.
#include "crash_handler.h"

#include <gtest/gtest.h>

#include <csignal>

namespace heapscope::analyzer {
namespace {

__attribute__((noinline)) void crash_inside_heapscope() {
  volatile int* nowhere = nullptr;
  *nowhere = 1;
}

TEST(CrashHandlerDeathTest, ReportsTheSignalAndOurStackThenDiesByIt) {
  EXPECT_EXIT(
      {
        install_crash_handler();
        crash_inside_heapscope();
      },
      testing::KilledBySignal(SIGSEGV),
      "heapscope: internal error: Segmentation fault.*please report it(.|\n)*crash_inside_heapscope");
}

TEST(CrashHandlerDeathTest, AbortIsReportedToo) {
  EXPECT_EXIT(
      {
        install_crash_handler();
        std::abort();
      },
      testing::KilledBySignal(SIGABRT), "heapscope: internal error: Aborted");
}

}  // namespace
}  // namespace heapscope::analyzer
