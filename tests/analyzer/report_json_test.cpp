// The JSON report's public contract (schema heapscope.report v1): every documented field is
// present with its type. Fields may be added, never renamed or dropped.
#include "report_json.h"

#include <gtest/gtest.h>

#include "record_builder.h"

namespace heapscope::analyzer {
namespace {

using nlohmann::json;

Report sample_report() {
  test::RecordBuilder records;
  TracedProcess traced;
  traced.launched = true;
  traced.exit.code = 0;
  traced.model.apply(records.stack(1, {0x1234}));
  traced.model.apply(records.alloc(0x5000, 400, 1));
  traced.model.apply(records.alloc(0x6000, 32, 1));
  format::CorruptionEvent corruption{};
  corruption.error = static_cast<uint16_t>(format::ErrorKind::kOverflow);
  corruption.address = 0x6000;
  corruption.block_size = 32;
  corruption.bad_offset = 32;
  corruption.stack_id = 1;
  corruption.alloc_stack_id = 1;
  corruption.alloc_family = static_cast<uint8_t>(format::Family::kMalloc);
  corruption.free_api = static_cast<uint8_t>(format::Api::kFree);
  traced.model.apply(records.add(format::EventKind::kCorruption, corruption));
  Symbolizer symbolizer;
  return build_report({traced}, symbolizer);
}

TEST(ReportJson, TopLevelContract) {
  const json report = to_json(sample_report());
  EXPECT_EQ(report["schema"], "heapscope.report");
  EXPECT_EQ(report["schema_version"], 1);
  ASSERT_TRUE(report["processes"].is_array());
  ASSERT_EQ(report["processes"].size(), 1u);
}

TEST(ReportJson, ProcessContract) {
  const json process = to_json(sample_report())["processes"][0];
  for (const char* key : {"pid", "command", "exit", "summary", "leaks", "errors", "modules"})
    EXPECT_TRUE(process.contains(key)) << key;
  EXPECT_TRUE(process["exit"]["code"].is_number());
  EXPECT_TRUE(process["exit"]["signal"].is_null());
  const json& summary = process["summary"];
  EXPECT_EQ(summary["allocations"], 2);
  EXPECT_EQ(summary["frees"], 0);
  EXPECT_EQ(summary["bytes_allocated"], 432);
  EXPECT_EQ(summary["peak_live_bytes"], 432);
  EXPECT_EQ(summary["live_at_exit"]["blocks"], 2);
  EXPECT_EQ(summary["live_at_exit"]["bytes"], 432);
  EXPECT_EQ(summary["error_count"], 1);
}

TEST(ReportJson, LeakAndErrorContract) {
  const json process = to_json(sample_report())["processes"][0];
  ASSERT_EQ(process["leaks"].size(), 1u);
  const json& leak = process["leaks"][0];
  EXPECT_EQ(leak["kind"], "unclassified");
  EXPECT_EQ(leak["blocks"], 2);
  EXPECT_EQ(leak["bytes"], 432);
  EXPECT_EQ(leak["allocator"], "malloc");
  ASSERT_EQ(leak["stack"].size(), 1u);
  const json& frame = leak["stack"][0];
  EXPECT_EQ(frame["address"], "0x1234");
  for (const char* key : {"function", "file", "line", "module"}) EXPECT_TRUE(frame.contains(key)) << key;

  ASSERT_EQ(process["errors"].size(), 1u);
  const json& error = process["errors"][0];
  EXPECT_EQ(error["kind"], "overflow");
  EXPECT_EQ(error["address"], "0x6000");
  EXPECT_EQ(error["block_size"], 32);
  EXPECT_TRUE(error["stack"].is_array());
  EXPECT_TRUE(error["alloc_stack"].is_array());
  EXPECT_TRUE(error["free_stack"].is_null());
}

}  // namespace
}  // namespace heapscope::analyzer
