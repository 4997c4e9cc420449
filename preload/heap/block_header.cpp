// Canary and fill-pattern arithmetic for tracked blocks (see block_header.h). Hot path.
#include "block_header.h"

#include <cstring>

namespace heapscope::preload::block {
namespace {

uint64_t process_secret = 0x9e3779b97f4a7c15ull;

// The block's canary seed: one full mix of the secret and the address, so a block's canaries
// cannot be predicted without the secret and a block copied from another never matches.
inline uint64_t canary_seed(uintptr_t user) noexcept {
  uint64_t x = process_secret ^ user;
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// The front canary is words 0-1, the tail canary starts at word 2, bytes laid out
// little-endian, word after word. Each word is the seed rotated and salted differently (a
// bijection of the seed), so shifted canaries do not match either; one mix per block rather
// than one per word, since arm and check run on every allocation and free. No byte is ever
// 0x00 or 0xFF (bit 0 set, bit 1 clear): the commonest overflow writes a string's NUL one byte
// past the end, and with a free-running byte it went unseen once in 256 runs.
constexpr uint64_t kWordSalt[6] = {0x9e3779b97f4a7c15ull, 0x3c6ef372fe94f82aull, 0xdaa66d2c7ddf743full,
                                   0x78dde6e5fd29f054ull, 0x1715609d7c746c69ull, 0xb54cda56fbbee87eull};
inline uint64_t canary_word(uint64_t seed, unsigned index) noexcept {
  const unsigned bits = 11 * index;
  const uint64_t rotated = bits == 0 ? seed : (seed << bits) | (seed >> (64 - bits));
  return ((rotated ^ kWordSalt[index]) | 0x0101010101010101ull) & ~0x0202020202020202ull;
}

// The tail canary is at most 31 bytes (tail_bytes): four words.
constexpr size_t kMaxTailWords = 4;

inline void tail_pattern(uint64_t seed, uint64_t (&words)[kMaxTailWords]) noexcept {
  for (unsigned i = 0; i < kMaxTailWords; ++i) words[i] = canary_word(seed, 2 + i);
}

}  // namespace

void set_secret(uint64_t secret) noexcept { process_secret = secret | 1; }

bool total_bytes(size_t size, size_t alignment, size_t& total) noexcept {
  size_t with_front = 0;
  if (__builtin_add_overflow(size, front_bytes(alignment), &with_front)) return false;
  return !__builtin_add_overflow(with_front, tail_bytes(size), &total);
}

void arm(void* user, size_t size, size_t front, uint32_t stack_id) noexcept {
  arm_with_tail(user, size, front, stack_id, tail_bytes(size));
}

void arm_with_tail(void* user, size_t size, size_t front, uint32_t stack_id, size_t tail_length) noexcept {
  const auto address = reinterpret_cast<uintptr_t>(user);
  auto* header = reinterpret_cast<BlockHeader*>(static_cast<char*>(user) - sizeof(BlockHeader));
  header->size = size;
  header->alloc_stack_id = stack_id;
  header->front_offset = front > UINT32_MAX ? 0 : static_cast<uint32_t>(front);  // informational only
  const uint64_t seed = canary_seed(address);
  const uint64_t front_words[2] = {canary_word(seed, 0), canary_word(seed, 1)};
  memcpy(header->front_canary, front_words, sizeof(front_words));
  uint64_t tail_words[kMaxTailWords];
  tail_pattern(seed, tail_words);
  memcpy(static_cast<uint8_t*>(user) + size, tail_words, tail_length);
}

// Compares `length` bytes (at most 32) word by word: a memcmp call costs more than the compare
// itself at these sizes. Fixed-size memcpy compiles to plain unaligned loads.
inline bool same_bytes(const uint8_t* actual, const uint8_t* expected, size_t length) noexcept {
  uint64_t difference = 0;
  size_t i = 0;
  for (; i + 8 <= length; i += 8) {
    uint64_t a, b;
    memcpy(&a, actual + i, 8);
    memcpy(&b, expected + i, 8);
    difference |= a ^ b;
  }
  for (; i < length; ++i) difference |= actual[i] ^ expected[i];
  return difference == 0;
}

int check(const void* user, size_t size, int64_t& bad_offset) noexcept {
  return check_with_tail(user, size, tail_bytes(size), bad_offset);
}

int check_with_tail(const void* user, size_t size, size_t tail_length, int64_t& bad_offset) noexcept {
  const auto address = reinterpret_cast<uintptr_t>(user);
  const uint64_t seed = canary_seed(address);
  const uint64_t front_words[2] = {canary_word(seed, 0), canary_word(seed, 1)};
  const auto* expected_front = reinterpret_cast<const uint8_t*>(front_words);
  const auto* front = static_cast<const uint8_t*>(user) - 16;
  if (!same_bytes(front, expected_front, 16)) {
    size_t i = 0;
    while (front[i] == expected_front[i]) ++i;
    bad_offset = static_cast<int64_t>(i) - 16;
    return -1;
  }
  uint64_t tail_words[kMaxTailWords];
  tail_pattern(seed, tail_words);
  const auto* expected_tail = reinterpret_cast<const uint8_t*>(tail_words);
  const auto* tail = static_cast<const uint8_t*>(user) + size;
  if (!same_bytes(tail, expected_tail, tail_length)) {
    size_t i = 0;
    while (tail[i] == expected_tail[i]) ++i;
    bad_offset = static_cast<int64_t>(size + i);
    return 1;
  }
  return 0;
}

void fill_freed(void* user, size_t size) noexcept { memset(user, kFreedFill, size); }

int64_t check_fill(const void* user, size_t size) noexcept {
  // memcmp against a pattern page is libc's vectorized compare; only a mismatching chunk is
  // walked byte by byte to find the first changed byte.
  static constexpr size_t kChunk = 4096;
  static const auto pattern = [] {
    struct Page {
      uint8_t bytes[kChunk];
    } page;
    memset(page.bytes, kFreedFill, kChunk);
    return page;
  }();
  const auto* bytes = static_cast<const uint8_t*>(user);
  for (size_t done = 0; done < size; done += kChunk) {
    const size_t length = size - done < kChunk ? size - done : kChunk;
    if (memcmp(bytes + done, pattern.bytes, length) == 0) continue;
    for (size_t i = 0; i < length; ++i)
      if (bytes[done + i] != kFreedFill) return static_cast<int64_t>(done + i);
  }
  return -1;
}

}  // namespace heapscope::preload::block
