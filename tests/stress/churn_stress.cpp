// Stress, not a benchmark: 8 threads allocate with every API, hand blocks to each other through
// lock-free mailboxes, and free them on other threads, with seeded (deterministic per thread)
// randomness. Every block is written in full and verified before it is freed, so a heap
// corruption caused by the agent shows up as a wrong byte; the agent itself must report zero
// errors. Exactly kLeaksPerThread blocks of kLeakSize bytes per thread are leaked on purpose:
// main forgets them before it returns, so they are definitely lost.
// usage: churn_stress [operations-per-thread]
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

namespace {

constexpr int kThreads = 8;
constexpr int kMailboxSlots = 64;
constexpr int kLeaksPerThread = 3;
constexpr size_t kLeakSize = 4321;

struct Block {
  unsigned char* bytes;
  size_t size;
  unsigned char tag;
  int kind;  // 0 malloc family, 1 new[]
};

std::atomic<Block*> mailboxes[kThreads][kMailboxSlots];
std::atomic<long> corrupt{0};
void* leaked[kThreads][kLeaksPerThread];

uint64_t next(uint64_t& state) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

Block* make_block(uint64_t& rng) {
  const uint64_t r = next(rng);
  const size_t size = 1 + r % (r % 16 == 0 ? 70000 : 300);
  auto* block = new Block{nullptr, size, static_cast<unsigned char>(r >> 40), 0};
  switch (r % 6) {
    case 0: block->bytes = static_cast<unsigned char*>(malloc(size)); break;
    case 1: block->bytes = static_cast<unsigned char*>(calloc(1, size)); break;
    case 2: block->bytes = static_cast<unsigned char*>(aligned_alloc(64, (size + 63) & ~size_t{63})); break;
    case 3: {
      void* p = nullptr;
      if (posix_memalign(&p, 256, size) != 0) p = nullptr;
      block->bytes = static_cast<unsigned char*>(p);
      break;
    }
    case 4: block->bytes = static_cast<unsigned char*>(realloc(malloc(8), size)); break;
    default: block->bytes = new unsigned char[size]; block->kind = 1; break;
  }
  memset(block->bytes, block->tag, size);
  return block;
}

void release(Block* block) {
  for (size_t i = 0; i < block->size; ++i) {
    if (block->bytes[i] != block->tag) {
      corrupt.fetch_add(1);
      break;
    }
  }
  if (block->kind == 1) {
    delete[] block->bytes;
  } else {
    free(block->bytes);
  }
  delete block;
}

void worker(int id, long operations) {
  uint64_t rng = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(id + 1);
  std::vector<Block*> mine;
  for (long op = 0; op < operations; ++op) {
    const uint64_t r = next(rng);
    if (r % 3 == 0 && !mine.empty()) {
      // Hand a block to another thread.
      Block* block = mine.back();
      mine.pop_back();
      const int to = static_cast<int>((r >> 8) % kThreads);
      Block* expected = nullptr;
      if (!mailboxes[to][(r >> 16) % kMailboxSlots].compare_exchange_strong(expected, block))
        release(block);
    } else if (r % 3 == 1) {
      // Take whatever others sent us and free it here.
      for (auto& slot : mailboxes[id])
        if (Block* block = slot.exchange(nullptr)) release(block);
    } else {
      mine.push_back(make_block(rng));
      if (mine.size() > 200) {
        release(mine.front());
        mine.erase(mine.begin());
      }
    }
  }
  for (Block* block : mine) release(block);
  for (int i = 0; i < kLeaksPerThread; ++i) {
    leaked[id][i] = malloc(kLeakSize);
    memset(leaked[id][i], 1, kLeakSize);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const long operations = argc > 1 ? atol(argv[1]) : 100000;
  std::vector<std::thread> threads;
  for (int id = 0; id < kThreads; ++id) threads.emplace_back(worker, id, operations);
  for (auto& thread : threads) thread.join();
  for (auto& box : mailboxes)
    for (auto& slot : box)
      if (Block* block = slot.exchange(nullptr)) release(block);
  memset(leaked, 0, sizeof(leaked));
  if (corrupt.load() != 0) {
    fprintf(stderr, "churn_stress: %ld blocks changed under us\n", corrupt.load());
    return 1;
  }
  return 0;
}
