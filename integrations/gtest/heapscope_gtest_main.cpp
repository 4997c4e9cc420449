// heapscope::gtest_main: link it instead of GoogleTest's own main. Under heapscope (`heapscope
// run`, heapscope_add_test()) each test is checked for the blocks it leaked and the heap errors
// it made, and fails if it did; without heapscope nothing is added and the tests run as with
// GTest::gtest_main.
//
// Per test: a leak check before it (what earlier code lost is not this test's), a phase named
// after the test, then after it a heap verification and a second leak check. The blocks that
// check newly finds lost (definite, indirect or possible) are the test's leaks: the failure
// names their sites (the innermost frames, heapscope_leak_check_sites, named from the modules'
// symbol tables: no subprocess, nothing for heapscope to trace), and
// heapscope's report has their whole stacks under that check and phase. Each check is a full
// reachability scan, milliseconds per test for a heap of thousands of blocks.
#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <gtest/gtest.h>
#include <heapscope/heapscope.h>
#include <link.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

namespace {

// The function holding `lookup` (a file address) in the ELF file `path`: its .symtab, else its
// .dynsym, read directly so static functions are named too. "" when none is found (stripped).
std::string function_in_file(const std::string& path, uintptr_t lookup) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  struct stat file {};
  void* mapped = fstat(fd, &file) == 0 && file.st_size > static_cast<off_t>(sizeof(ElfW(Ehdr)))
                     ? mmap(nullptr, static_cast<size_t>(file.st_size), PROT_READ, MAP_PRIVATE, fd, 0)
                     : MAP_FAILED;
  close(fd);
  if (mapped == MAP_FAILED) return "";
  const auto* bytes = static_cast<const char*>(mapped);
  const size_t size = static_cast<size_t>(file.st_size);
  const auto* header = reinterpret_cast<const ElfW(Ehdr)*>(bytes);
  std::string found;
  const bool sane = std::memcmp(header->e_ident, ELFMAG, SELFMAG) == 0 && header->e_shentsize == sizeof(ElfW(Shdr)) &&
                    header->e_shoff + size_t{header->e_shnum} * sizeof(ElfW(Shdr)) <= size;
  for (const uint32_t wanted : {uint32_t{SHT_SYMTAB}, uint32_t{SHT_DYNSYM}}) {
    if (!sane || !found.empty()) break;
    const auto* sections = reinterpret_cast<const ElfW(Shdr)*>(bytes + header->e_shoff);
    for (size_t s = 0; s < header->e_shnum && found.empty(); ++s) {
      const ElfW(Shdr)& table = sections[s];
      if (table.sh_type != wanted || table.sh_link >= header->e_shnum || table.sh_offset + table.sh_size > size) continue;
      const ElfW(Shdr)& names = sections[table.sh_link];
      if (names.sh_offset + names.sh_size > size) continue;
      const auto* symbols = reinterpret_cast<const ElfW(Sym)*>(bytes + table.sh_offset);
      for (size_t i = 0; i < table.sh_size / sizeof(ElfW(Sym)); ++i) {
        const ElfW(Sym)& symbol = symbols[i];
        if (ELF64_ST_TYPE(symbol.st_info) != STT_FUNC || symbol.st_name >= names.sh_size) continue;
        if (lookup < symbol.st_value || lookup >= symbol.st_value + (symbol.st_size == 0 ? 1 : symbol.st_size)) continue;
        found = bytes + names.sh_offset + symbol.st_name;
        break;
      }
    }
  }
  munmap(mapped, size);
  return found;
}

// "function" for a frame (demangled), from the module's own symbol table; else module+offset.
std::string describe_frame(void* frame) {
  Dl_info info{};
  std::ostringstream out;
  if (frame == nullptr || dladdr(frame, &info) == 0 || info.dli_fname == nullptr) {
    out << frame;
    return out.str();
  }
  // Frames are return addresses: the call is the byte before. A position-dependent executable
  // is looked up by address, anything else by its offset from the load base.
  const auto* elf = static_cast<const ElfW(Ehdr)*>(info.dli_fbase);
  const uintptr_t address = reinterpret_cast<uintptr_t>(frame) - 1;
  const uintptr_t lookup = elf->e_type == ET_EXEC ? address : address - reinterpret_cast<uintptr_t>(info.dli_fbase);
  const std::string module = info.dli_fname[0] != '\0' ? info.dli_fname : "/proc/self/exe";
  std::string name = function_in_file(module, lookup);
  if (name.empty() && info.dli_sname != nullptr) name = info.dli_sname;
  if (!name.empty()) {
    int status = 0;
    char* demangled = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
    if (status == 0 && demangled != nullptr) name = demangled;
    std::free(demangled);
    return name + " (in " + module.substr(module.rfind('/') + 1) + ")";
  }
  out << module << "+0x" << std::hex << lookup;
  return out.str();
}

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
    heapscope_lost_site sites[kSitesShown];
    int shown = 0;
    const int leaked = heapscope_leak_check_sites(sites, kSitesShown, &shown);
    const std::string phase = std::string(test.test_suite_name()) + "." + test.name();
    if (errors > 0) {
      ADD_FAILURE() << "heapscope: " << errors << " heap error(s) during " << phase
                    << "; heapscope's report gives each with its stacks";
    }
    if (leaked > 0) {
      std::ostringstream sites_text;
      for (int i = 0; i < shown; ++i) {
        sites_text << "\n  " << sites[i].bytes << " bytes in " << sites[i].blocks << " block(s) allocated at";
        for (void* frame : sites[i].frames)
          if (frame != nullptr) sites_text << "\n    " << describe_frame(frame);
      }
      ADD_FAILURE() << "heapscope: " << phase << " leaked " << leaked
                    << " block(s) (definitely, indirectly or possibly lost):" << sites_text.str()
                    << "\nheapscope's report lists them with their whole stacks under the leak check of phase \""
                    << phase << "\"";
    }
  }

 private:
  static constexpr int kSitesShown = 3;
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
