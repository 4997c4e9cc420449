// HEAPSCOPE_OPTIONS parsing: every row of agent_options.inc, bad input, clamping.
#include "options.h"

#include <gtest/gtest.h>

namespace heapscope::preload {
namespace {

TEST(OptionsParse, DefaultsComeFromTheTable) {
  Options options;
  EXPECT_EQ(options.max_frames, 32u);
  EXPECT_TRUE(options.canaries);
  EXPECT_EQ(options.quarantine_mib, 16u);
  EXPECT_FALSE(options.abort_on_error);
}

TEST(OptionsParse, ParsesEveryType) {
  Options options;
  EXPECT_EQ(parse_options("max_frames=8:canaries=no:quarantine_mib=0:abort_on_error=1", options), 0);
  EXPECT_EQ(options.max_frames, 8u);
  EXPECT_FALSE(options.canaries);
  EXPECT_EQ(options.quarantine_mib, 0u);
  EXPECT_TRUE(options.abort_on_error);
}

TEST(OptionsParse, LaterSettingsWin) {
  Options options;
  EXPECT_EQ(parse_options("max_frames=8:max_frames=12", options), 0);
  EXPECT_EQ(options.max_frames, 12u);
}

TEST(OptionsParse, BadInputIsCountedAndSkipped) {
  Options options;
  testing::internal::CaptureStderr();
  EXPECT_EQ(parse_options("nonsense=1:max_frames=lots:canaries=maybe:free_stacks=no", options), 3);
  const std::string messages = testing::internal::GetCapturedStderr();
  EXPECT_NE(messages.find("unknown option 'nonsense=1'"), std::string::npos) << messages;
  EXPECT_NE(messages.find("bad value in option 'max_frames=lots'"), std::string::npos);
  EXPECT_EQ(options.max_frames, 32u);  // untouched
  EXPECT_FALSE(options.free_stacks);   // the good one still applies
}

TEST(OptionsParse, ClampsToDocumentedRanges) {
  Options options;
  parse_options("max_frames=1000:ring_mib=0", options);
  EXPECT_EQ(options.max_frames, 64u);
  EXPECT_EQ(options.ring_mib, 1u);
  EXPECT_EQ(parse_options("", options), 0);
  EXPECT_EQ(parse_options(nullptr, options), 0);
}

}  // namespace
}  // namespace heapscope::preload
