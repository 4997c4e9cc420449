// heapscope::gtest_main: link it instead of GoogleTest's own main. Under heapscope (`heapscope
// run`, heapscope_add_test()) each test is checked for the blocks it leaked and the heap errors
// it made, and fails if it did; without heapscope nothing is added and the tests run as with
// GTest::gtest_main.
//
// Per test: a leak check before it (what earlier code lost is not this test's), a phase named
// after the test, then after it a heap verification and a second leak check. The blocks that
// check newly finds lost (definite, indirect or possible) are the test's leaks; heapscope's
// report lists them with their allocation stacks under that check and phase. Each check is a
// full reachability scan, milliseconds per test for a heap of thousands of blocks.
#include <gtest/gtest.h>
#include <heapscope/heapscope.h>

#include <string>

namespace {

class HeapscopeListener : public testing::EmptyTestEventListener {
 public:
  void OnTestStart(const testing::TestInfo& test) override {
    heapscope_leak_check();  // blocks lost before the test are not its own
    errors_before_ = heapscope_error_count();
    const std::string phase = std::string(test.test_suite_name()) + "." + test.name();
    heapscope_mark_phase(phase.c_str());
  }

  // Runs while GoogleTest still counts failures against this test, and before the result
  // printer (end events go to listeners in reverse order), so the test is printed as FAILED.
  void OnTestEnd(const testing::TestInfo& test) override {
    heapscope_verify_heap();
    const unsigned long long errors = heapscope_error_count() - errors_before_;
    const int leaked = heapscope_leak_check();
    const std::string phase = std::string(test.test_suite_name()) + "." + test.name();
    if (errors > 0) {
      ADD_FAILURE() << "heapscope: " << errors << " heap error(s) during " << phase
                    << "; heapscope's report gives each with its stacks";
    }
    if (leaked > 0) {
      ADD_FAILURE() << "heapscope: " << phase << " leaked " << leaked
                    << " block(s) (definitely, indirectly or possibly lost); heapscope's report lists them with"
                       " their allocation stacks under the leak check of phase \""
                    << phase << "\"";
    }
  }

 private:
  unsigned long long errors_before_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  // After the result printer: GoogleTest calls OnTestEnd in reverse order, so ours runs first
  // and the printer sees the failures it adds.
  if (heapscope_running()) testing::UnitTest::GetInstance()->listeners().Append(new HeapscopeListener);
  return RUN_ALL_TESTS();
}
