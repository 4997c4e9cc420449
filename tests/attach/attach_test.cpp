// Unit tests of attach/: the /proc and ELF readers on this very process, and the ptrace parts
// on real child processes (a fork of this test, blocked in read() or epoll_wait): a remote
// call, the whole thread state put back, signals held while we hold the thread, a fault in the
// callee reported and never delivered. Tests that need ptrace skip, saying why, where the
// kernel refuses it.
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <optional>
#include <algorithm>

#include <gtest/gtest.h>

#include "attach_error.h"
#include "elf_symbols.h"
#include "proc_target.h"
#include "ptrace_session.h"
#include "remote_call.h"
#include "remote_unwind.h"

namespace heapscope::attach {
namespace {

using namespace std::chrono_literals;

std::string libc_path() {
  Dl_info info{};
  EXPECT_NE(dladdr(reinterpret_cast<void*>(&malloc), &info), 0);
  return info.dli_fname;
}

TEST(ElfSymbols, FindsTheCLibrarysEntryPointsWithTheirDefaultVersion) {
  const ElfFile libc = read_elf(libc_path());
  ASSERT_TRUE(libc.is_64bit_x86);
  for (const char* name : {"dlopen", "dlsym", "dlerror", "mmap", "munmap", "malloc", "free"}) {
    const auto found = libc.functions.find(name);
    ASSERT_NE(found, libc.functions.end()) << name;
    EXPECT_GT(found->second.size, 0u) << name;
  }
  // The file's dlopen, at this process's load bias, is the dlopen this process calls.
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(&dlopen), &info), 0);
  const uint64_t bias = reinterpret_cast<uint64_t>(info.dli_fbase) - libc.first_load_vaddr;
  EXPECT_EQ(bias + libc.functions.at("dlopen").value, reinterpret_cast<uint64_t>(&dlopen));
}

TEST(ElfSymbols, TellsDynamicFromStaticAndRefusesWhatIsNotElf) {
  EXPECT_TRUE(read_elf("/proc/self/exe").has_interpreter);
  const std::string path = testing::TempDir() + "/not-elf";
  std::ofstream(path) << "#!/bin/sh\necho hello\n";
  EXPECT_THROW(read_elf(path), std::runtime_error);
  EXPECT_THROW(read_elf(testing::TempDir() + "/missing"), std::runtime_error);
}

TEST(ProcTarget, ReadsItsOwnStatusMapsThreadsAndObjects) {
  const ProcessStatus status = read_status(getpid());
  EXPECT_EQ(status.state, 'R');
  const std::vector<Mapping> maps = read_maps(getpid());
  const auto libc = find_object(maps, "libc.so.");
  ASSERT_TRUE(libc.has_value());
  EXPECT_TRUE(std::filesystem::equivalent(libc->path, libc_path())) << libc->path;  // /lib is /usr/lib
  const auto address = reinterpret_cast<uint64_t>(&malloc);
  EXPECT_TRUE(address >= libc->text_begin && address < libc->text_end);
  const Mapping* holding = mapping_of(maps, address);
  ASSERT_NE(holding, nullptr);
  EXPECT_TRUE(holding->executable);
  const std::vector<int> threads = list_threads(getpid());
  EXPECT_NE(std::find(threads.begin(), threads.end(), static_cast<int>(syscall(SYS_gettid))), threads.end());
  EXPECT_THROW(read_status(999999999), std::system_error);
}

// A fork of this test that blocks in read() on a pipe, then reports what read() returned on
// another pipe. SIGUSR1 to it writes "usr1" on that pipe from a handler.
class BlockedChild {
 public:
  explicit BlockedChild(bool in_epoll = false) {
    if (pipe(input_) != 0 || pipe(report_) != 0) throw std::runtime_error("pipe");
    event_ = eventfd(0, 0);
    pid_ = fork();
    if (pid_ == 0) run(in_epoll);
    close(input_[0]);
    close(report_[1]);
    // Until the child is blocked in its wait, a seize would catch it elsewhere.
    const long wanted = in_epoll ? SYS_epoll_wait : SYS_read;
    for (int i = 0; i < 2000; ++i) {
      const auto state = read_thread_syscall(pid_, pid_);
      if (state && !state->running && state->number == wanted) return;
      std::this_thread::sleep_for(1ms);
    }
  }
  ~BlockedChild() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  int pid() const { return pid_; }
  void release() {
    uint64_t one = 1;
    (void)!write(input_[1], "hello", 5);
    (void)!write(event_, &one, sizeof(one));
  }
  std::string report() {
    char buffer[128] = {};
    std::string text;
    for (;;) {
      const ssize_t got = read(report_[0], buffer, sizeof(buffer));
      if (got <= 0) return text;
      text.append(buffer, static_cast<size_t>(got));
      if (text.find("end\n") != std::string::npos) return text;
    }
  }

 private:
  static void on_usr1(int) { (void)!write(report_fd_, "usr1\n", 5); }
  [[noreturn]] void run(bool in_epoll) {
    report_fd_ = report_[1];
    signal(SIGUSR1, on_usr1);
    char buffer[16];
    char line[64];
    int length;
    if (in_epoll) {
      const int epoll = epoll_create1(0);
      epoll_event wanted{};
      wanted.events = EPOLLIN;
      epoll_ctl(epoll, EPOLL_CTL_ADD, event_, &wanted);
      epoll_event got{};
      const int ready = epoll_wait(epoll, &got, 1, -1);
      length = snprintf(line, sizeof(line), "epoll %d errno %d\nend\n", ready, ready < 0 ? errno : 0);
    } else {
      const ssize_t got = read(input_[0], buffer, sizeof(buffer));
      length = snprintf(line, sizeof(line), "read %zd errno %d\nend\n", got, got < 0 ? errno : 0);
    }
    (void)!write(report_[1], line, static_cast<size_t>(length));
    _exit(0);
  }
  static inline int report_fd_ = -1;
  int input_[2];
  int report_[2];
  int event_ = -1;
  pid_t pid_ = -1;
};

// Seizes the child's only thread, or skips the test when the kernel refuses.
#define SEIZE_OR_SKIP(session, child)                                                        \
  std::optional<PtraceSession> session;                                                     \
  try {                                                                                     \
    session.emplace((child).pid(), (child).pid(), 2000ms);                                  \
  } catch (const AttachError& error) {                                                      \
    if (error.refusal() == Refusal::kNotPermitted) GTEST_SKIP() << error.what();            \
    throw;                                                                                  \
  }

uint64_t below_red_zone(const PtraceSession& session) {
  return regs::stack_pointer(session.saved().registers) - regs::kRedZone - 256;
}

TEST(RemoteCall, CallsAFunctionInAThreadBlockedInReadAndPutsEverythingBack) {
  BlockedChild child;
  {
    SEIZE_OR_SKIP(session, child);
    const SavedThreadState saved = session->saved();
    EXPECT_EQ(regs::interrupted_syscall(saved.registers), SYS_read);
    EXPECT_GT(saved.xstate.size(), 512u);  // the legacy FXSAVE area and more
    // A fork: getpid is at the same address in the child.
    const uint64_t result = remote_call(*session, reinterpret_cast<uint64_t>(&getpid), {}, below_red_zone(*session),
                                        2000ms, "getpid");
    EXPECT_EQ(result, static_cast<uint64_t>(child.pid()));
    // strlen of a string we write into its stack: arguments arrive.
    const char text[] = "seven!!";
    const uint64_t where = below_red_zone(*session) - 4096;
    session->write_memory(where, text, sizeof(text));
    EXPECT_EQ(remote_call(*session, reinterpret_cast<uint64_t>(&strlen), {where}, where, 2000ms, "strlen"), 7u);
    session->restore();
    const regs::Registers back = session->registers();
    EXPECT_EQ(back.rip, saved.registers.rip);
    EXPECT_EQ(back.rsp, saved.registers.rsp);
    EXPECT_EQ(back.orig_rax, saved.registers.orig_rax);
    EXPECT_TRUE(session->detach());
  }
  child.release();
  // The read() it was blocked in restarted: it got the bytes, no EINTR.
  EXPECT_EQ(child.report(), "read 5 errno 0\nend\n");
}

TEST(RemoteCall, AFaultInTheCalleeIsReportedAndNeverReachesTheProgram) {
  BlockedChild child;
  {
    SEIZE_OR_SKIP(session, child);
    session->block_signals();
    try {
      remote_call(*session, 0x10, {}, below_red_zone(*session), 2000ms, "a call to 0x10");
      ADD_FAILURE() << "the fault was not reported";
    } catch (const AttachError& error) {
      EXPECT_EQ(error.refusal(), Refusal::kInjectionFailed);
      EXPECT_NE(std::string(error.what()).find("a call to 0x10 stopped with signal 11"), std::string::npos)
          << error.what();
    }
  }
  child.release();
  EXPECT_EQ(child.report(), "read 5 errno 0\nend\n");  // alive, its read() resumed
}

TEST(PtraceSession, SignalsWaitWhileTheThreadIsHeldAndArriveAfter) {
  BlockedChild child;
  {
    SEIZE_OR_SKIP(session, child);
    session->block_signals();
    kill(child.pid(), SIGUSR1);
    remote_call(*session, reinterpret_cast<uint64_t>(&getpid), {}, below_red_zone(*session), 2000ms, "getpid");
  }
  child.release();
  // Delivered once the mask was restored: the handler ran (interrupting read, which restarts:
  // SIG_DFL's SA_RESTART is signal()'s default on glibc), then read got its bytes.
  const std::string report = child.report();
  EXPECT_NE(report.find("usr1\n"), std::string::npos) << report;
  EXPECT_NE(report.find("read 5 errno 0\n"), std::string::npos) << report;
}

TEST(PtraceSession, AThreadHeldInEpollWaitWaitsAgainInsteadOfGettingEintr) {
  BlockedChild child(/*in_epoll=*/true);
  {
    SEIZE_OR_SKIP(session, child);
    EXPECT_EQ(regs::interrupted_syscall(session->saved().registers), SYS_epoll_wait);
  }
  std::this_thread::sleep_for(50ms);
  child.release();
  EXPECT_EQ(child.report(), "epoll 1 errno 0\nend\n");
}

TEST(RemoteUnwinder, UnwindsAThreadHeldInReadThroughTheCLibrary) {
  BlockedChild child;
  SEIZE_OR_SKIP(session, child);
  RemoteUnwinder unwinder(child.pid());
  const auto frames = unwinder.frames(child.pid());
  ASSERT_TRUE(frames.has_value());
  ASSERT_GE(frames->size(), 3u);  // read, run, the constructor, the test body...
  EXPECT_EQ((*frames)[0], regs::pc(session->saved().registers));
  // One of the return addresses is in BlockedChild::run, a function of this binary.
  Dl_info info{};
  bool in_this_program = false;
  for (size_t i = 1; i < frames->size(); ++i)
    if (dladdr(reinterpret_cast<void*>((*frames)[i]), &info) != 0 && info.dli_fname != nullptr &&
        std::string(info.dli_fname).find("attach_test") != std::string::npos)
      in_this_program = true;
  EXPECT_TRUE(in_this_program);
}

TEST(PtraceSession, RefusesANonexistentProcessAsSuch) {
  try {
    PtraceSession session(999999999, 999999999, 100ms);
    ADD_FAILURE() << "seized a process that does not exist";
  } catch (const AttachError& error) {
    EXPECT_EQ(error.refusal(), Refusal::kNoSuchProcess);
  }
}

}  // namespace
}  // namespace heapscope::attach
