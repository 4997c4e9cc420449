// Out-of-process symbolization against this very test binary, whose layout we can read back
// through dl_iterate_phdr exactly as the agent records it.
#include "symbolizer.h"

#include <elfutils/libdwfl.h>
#include <gtest/gtest.h>
#include <link.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <random>
#include <string>
#include <vector>

namespace heapscope::analyzer {
namespace {

__attribute__((noinline)) void* return_address_here() { return __builtin_return_address(0); }

__attribute__((noinline)) void* known_call_site() {
  void* address = return_address_here();  // SYMBOLIZER_TEST_CALL_SITE
  asm volatile("" ::: "memory");
  return address;
}

Module main_module() {
  Module module;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        auto& m = *static_cast<Module*>(out);
        m.load_bias = info->dlpi_addr;
        m.start = UINT64_MAX;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          if (info->dlpi_phdr[i].p_type != PT_LOAD) continue;
          m.start = std::min<uint64_t>(m.start, info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
          m.end = std::max<uint64_t>(m.end, info->dlpi_addr + info->dlpi_phdr[i].p_vaddr + info->dlpi_phdr[i].p_memsz);
        }
        return 1;  // the first object is the main program
      },
      &module);
  char path[4096];
  const ssize_t length = readlink("/proc/self/exe", path, sizeof(path));
  module.path.assign(path, static_cast<size_t>(length));
  return module;
}

TEST(Symbolizer, FunctionFileAndLineOfAReturnAddress) {
  const Module module = main_module();
  const auto address = reinterpret_cast<uint64_t>(known_call_site());
  Symbolizer symbolizer;
  const auto& frames = symbolizer.symbolize(&module, address);
  ASSERT_FALSE(frames.empty());
  const SymbolizedFrame& frame = frames.back();
  EXPECT_EQ(frame.function, "heapscope::analyzer::(anonymous namespace)::known_call_site()");
  EXPECT_TRUE(frame.file.ends_with("symbolizer_test.cpp")) << frame.file;
  EXPECT_GT(frame.line, 0);
  EXPECT_EQ(frame.module, module.path);
  EXPECT_EQ(&symbolizer.symbolize(&module, address), &frames);  // cached
}

// Two processes of a run load one library at different addresses: the file is opened once
// (opening debug information is the expensive part) and each run-time address still gets its
// own frames, with its own address.
TEST(Symbolizer, OneFileLoadedAtTwoAddressesIsOpenedOnce) {
  const Module here = main_module();
  Module elsewhere = here;
  constexpr uint64_t kShift = 0x40000000;
  elsewhere.load_bias += kShift;
  elsewhere.start += kShift;
  elsewhere.end += kShift;
  const auto address = reinterpret_cast<uint64_t>(known_call_site());
  Symbolizer symbolizer;
  const auto& near = symbolizer.symbolize(&here, address);
  const auto& far = symbolizer.symbolize(&elsewhere, address + kShift);
  EXPECT_EQ(symbolizer.open_module_count(), 1u);
  ASSERT_FALSE(near.empty());
  ASSERT_EQ(far.size(), near.size());
  EXPECT_EQ(far.back().function, near.back().function);
  EXPECT_EQ(far.back().function, "heapscope::analyzer::(anonymous namespace)::known_call_site()");
  EXPECT_EQ(far.back().line, near.back().line);
  EXPECT_EQ(near.back().address, address);
  EXPECT_EQ(far.back().address, address + kShift);
  // The same run-time address in the other process is other code (or none): not the call site.
  const auto& unrelated = symbolizer.symbolize(&elsewhere, address);
  EXPECT_NE(unrelated.back().function, near.back().function);
}

// SymbolLookup against dwfl_module_addrinfo itself, address by address, on this binary (C++,
// full symbol table) and on libc (its symbol table in libc6-dbg's compressed debug file, with
// aliases, sizeless assembly labels and IFUNCs): thousands of addresses in random order, so
// answers kept for an interval are reused by later lookups.
TEST(SymbolLookup, GivesWhatDwflModuleAddrinfoGives) {
  char* debuginfo_path = nullptr;
  const Dwfl_Callbacks callbacks = {dwfl_build_id_find_elf, dwfl_standard_find_debuginfo,
                                    dwfl_offline_section_address, &debuginfo_path};
  char self[4096];
  const ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
  ASSERT_GT(length, 0);
  self[length] = '\0';
  // This program (a full symbol table, locals first), libc (dynamic symbols), and where installed
  // a big stripped library (libLLVM: 40,000 dynamic symbols, the case this lookup is for).
  std::vector<std::string> paths = {self, "/lib/x86_64-linux-gnu/libc.so.6"};
  for (const char* optional : {"/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"})
    if (access(optional, R_OK) == 0) paths.push_back(optional);
  for (const std::string& path_string : paths) {
    const char* path = path_string.c_str();
    Dwfl* dwfl = dwfl_begin(&callbacks);
    ASSERT_NE(dwfl, nullptr);
    dwfl_report_begin(dwfl);
    Dwfl_Module* module = dwfl_report_elf(dwfl, path, path, -1, 0, false);
    dwfl_report_end(dwfl, nullptr, nullptr);
    ASSERT_NE(module, nullptr) << path;
    Dwarf_Addr low = 0;
    Dwarf_Addr high = 0;
    dwfl_module_info(module, nullptr, &low, &high, nullptr, nullptr, nullptr, nullptr);
    ASSERT_LT(low, high);
    std::mt19937_64 random(42);
    std::vector<uint64_t> addresses;
    for (int i = 0; i < 1500; ++i) addresses.push_back(low + random() % (high - low));
    // Neighbours of earlier addresses too: the same interval, from either side.
    for (int i = 0; i < 500; ++i) addresses.push_back(addresses[i] + 1 + random() % 64);
    std::shuffle(addresses.begin(), addresses.end(), random);
    SymbolLookup lookup(module);
    int named = 0;
    for (const uint64_t address : addresses) {
      GElf_Off offset = 0;
      GElf_Sym symbol{};
      const char* expected = dwfl_module_addrinfo(module, address, &offset, &symbol, nullptr, nullptr, nullptr);
      const std::string want = expected != nullptr ? demangle(expected) : std::string();
      ASSERT_EQ(lookup.at(address), want) << path << " at 0x" << std::hex << address;
      named += !want.empty();
    }
    EXPECT_GT(named, path_string == paths[0] || path_string == paths[1] ? 500 : 100) << path;  // stripped: fewer names
    dwfl_end(dwfl);
  }
}

TEST(Symbolizer, UnknownModuleKeepsTheAddress) {
  Symbolizer symbolizer;
  const auto& frames = symbolizer.symbolize(nullptr, 0x1234);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].address, 0x1234u);
  EXPECT_TRUE(frames[0].function.empty());
}

TEST(Symbolizer, RefusesAModuleWhoseBuildIdChanged) {
  Module module = main_module();
  module.build_id = "00112233445566778899aabbccddeeff00112233";  // not this binary's
  Symbolizer symbolizer;
  const auto& frames = symbolizer.symbolize(&module, reinterpret_cast<uint64_t>(known_call_site()));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_TRUE(frames[0].function.empty());  // no confidently wrong names
  EXPECT_EQ(frames[0].module, module.path);
}

// issue 15: a trace naming a FIFO (or /dev/tty) as a module made `heapscope report` block in
// open() forever. Only regular files are opened, without blocking.
TEST(Symbolizer, NeverOpensAnythingButARegularFile) {
  const std::string fifo = testing::TempDir() + "/symbolizer-fifo-" + std::to_string(getpid());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Module module = main_module();
  module.path = fifo;
  module.build_id.clear();
  auto answer = std::async(std::launch::async, [&] {
    Symbolizer symbolizer;
    return symbolizer.symbolize(&module, module.start + 16);
  });
  if (answer.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    ADD_FAILURE() << "symbolize blocked on a FIFO";
    close(open(fifo.c_str(), O_RDWR));  // let the blocked open finish
  }
  const auto frames = answer.get();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_TRUE(frames[0].function.empty());
  EXPECT_EQ(frames[0].module, fifo);
  unlink(fifo.c_str());
}

TEST(Symbolizer, DemanglesCxxNames) {
  EXPECT_EQ(demangle("_ZN3foo3barEi"), "foo::bar(int)");
  EXPECT_EQ(demangle("plain_c"), "plain_c");
}

}  // namespace
}  // namespace heapscope::analyzer
