// The attach agent (libheapscope-attach.so) loaded into this very test process, without ptrace:
// dlopen it, start a session as `heapscope attach` would, read its ring with the analyzer's
// reader, end the session. What it checks is the redirection itself: this PIE reads malloc's
// address from its own GOT slot at every `&malloc`, so the slot's value is visible before,
// during and after a session; blocks from before, during and after are freed by whoever holds
// the slot then, and nothing breaks.
#include <dirent.h>
#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "heap_model.h"
#include "heapscope/attach_protocol.h"
#include "heapscope/event_format.h"
#include "ring_reader.h"

namespace heapscope::test {
namespace {

using namespace std::chrono_literals;
using AttachEntry = int (*)(const char*, int, const char*);
using MallocFn = void* (*)(size_t);

// The value of this program's GOT slot for malloc, read the way the compiler reads it for a
// call: `volatile` keeps it from being folded.
MallocFn malloc_slot() {
  MallocFn volatile slot = &malloc;
  return slot;
}

class Session {
 public:
  explicit Session(void* agent) {
    std::string pattern = testing::TempDir() + "/heapscope-agent-session-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp");
    directory_ = pattern;
    const auto entry = reinterpret_cast<AttachEntry>(dlsym(agent, format::kAttachEntry));
    status_ = entry != nullptr ? entry(directory_.c_str(), getpid(), "sample_ms=0") : -1;
    if (status_ != 0) return;
    for (const auto& file : std::filesystem::directory_iterator(directory_))
      if (file.path().extension() == ".ring") ring_ = std::make_unique<analyzer::RingReader>(file.path());
  }
  ~Session() { std::filesystem::remove_all(directory_); }
  int status() const { return status_; }
  analyzer::ProcessModel& model() { return model_; }
  void drain() {
    if (ring_) ring_->drain([&](const analyzer::RecordView& record) { model_.apply(record); });
  }
  // Asks the agent to end the session and waits (draining) until it has.
  bool detach() {
    ring_->set_state_bits(format::kRingDetachRequested);
    for (int i = 0; i < 500; ++i) {
      drain();
      if ((ring_->state() & format::kRingFinished) != 0) {
        drain();
        return true;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

 private:
  std::string directory_;
  int status_ = -1;
  std::unique_ptr<analyzer::RingReader> ring_;
  analyzer::ProcessModel model_;
};

bool has_live_block(const analyzer::ProcessModel& model, const void* pointer, uint64_t size) {
  const analyzer::LiveBlock* block = model.live().find(reinterpret_cast<uint64_t>(pointer));
  return block != nullptr && block->size == size;
}

TEST(AttachAgent, RedirectsTheProgramsSlotsForASessionAndPutsThemBack) {
  const MallocFn original = malloc_slot();
  void* before = malloc(321);  // from before any session
  void* agent = dlopen(ATTACH_AGENT_LIBRARY, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(agent, nullptr) << dlerror();
  const auto hook = reinterpret_cast<MallocFn>(dlsym(agent, "malloc"));
  ASSERT_NE(hook, nullptr);
  ASSERT_NE(hook, original);

  for (int round = 0; round < 2; ++round) {  // a second session works like the first
    Session session(agent);
    ASSERT_EQ(session.status(), 0) << "round " << round;
    EXPECT_EQ(malloc_slot(), hook) << "this program's malloc slot (full RELRO) now calls the agent";
    void* during = malloc(12345);
    ASSERT_NE(during, nullptr);
    session.drain();
    EXPECT_TRUE(has_live_block(session.model(), during, 12345)) << "the pointer the program got is the real one";
    if (round == 0) {
      free(before);  // a block the agent never saw: to the real allocator, counted
      before = nullptr;
    }
    char* kept = static_cast<char*>(malloc(77));  // made during the session, freed after it
    ASSERT_TRUE(session.detach());
    EXPECT_EQ(malloc_slot(), original) << "the slot holds what it held before";
    const auto& attach = session.model().attach_session();
    ASSERT_TRUE(attach.has_value());
    EXPECT_GT(attach->slots, 0u);
    EXPECT_EQ(attach->restored_slots, attach->slots);
    EXPECT_EQ(attach->reason, static_cast<uint32_t>(format::DetachReason::kRequested));
    if (round == 0) {
      EXPECT_GE(session.model().counters().unknown_frees, 1u);
    }
    // After the detach: the real allocator takes back what the session handed out.
    free(during);
    free(kept);
    void* after = malloc(99);
    free(after);
  }
}

}  // namespace
}  // namespace heapscope::test
